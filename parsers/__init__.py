"""Trace and kernel-stat parsers: real captures in, typed Arrow/pandas tables out."""
