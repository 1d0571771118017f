"""Trace and kernel-stat parsers: real captures in, typed Arrow/pandas tables out."""

from folio_replay.parsers.bundle import Bundle, load_bundle
from folio_replay.parsers.table import LostMarker, ParsedTrace
from folio_replay.parsers.trace import read_trace

__all__ = ["Bundle", "LostMarker", "ParsedTrace", "load_bundle", "read_trace"]
