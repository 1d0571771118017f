"""Trace and kernel-stat parsers: real captures in, typed Arrow/pandas tables out.

:func:`read_trace` reads any supported trace file (tracefs text, ``trace-cmd report`` text,
``perf script`` text, ``trace.dat``) into a :class:`Trace`; :func:`load_bundle` a capture
bundle. Subpackages: :mod:`.text` (text formats), :mod:`.tracedat` (trace.dat), :mod:`._native`
(byte-level helpers of the compiled readers); :mod:`.stats` reads the kernel's counters,
:mod:`.stream` streams any trace into Parquet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from folio_replay.lazy import lazy_names

if TYPE_CHECKING:
    from folio_replay.parsers.bundle import Bundle, load_bundle
    from folio_replay.parsers.table import LostMarker, Trace
    from folio_replay.parsers.trace import read_trace

__all__ = ["Bundle", "LostMarker", "Trace", "load_bundle", "read_trace"]

# Each public name is imported from its module on first use, so that a command imports only
# the readers it runs (``folio-replay parse x.dat`` needs neither pandas nor the text parser).
_HOME = {
    "Bundle": "folio_replay.parsers.bundle",
    "load_bundle": "folio_replay.parsers.bundle",
    "LostMarker": "folio_replay.parsers.table",
    "Trace": "folio_replay.parsers.table",
    "read_trace": "folio_replay.parsers.trace",
}

__getattr__ = lazy_names(globals(), _HOME)
