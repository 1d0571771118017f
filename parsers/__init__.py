"""Trace and kernel-stat parsers: real captures in, typed Arrow/pandas tables out."""

from parsers.bundle import Bundle, load_bundle
from parsers.table import LostMarker, ParsedTrace
from parsers.trace import read_trace

__all__ = ["Bundle", "LostMarker", "ParsedTrace", "load_bundle", "read_trace"]
