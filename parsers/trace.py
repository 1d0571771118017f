"""``read_trace``: any supported trace file into the event table."""

from __future__ import annotations

from pathlib import Path

from folio_replay.parsers.files import regular_file
from folio_replay.parsers.table import Trace
from folio_replay.parsers.text.fast import read_text_fast
from folio_replay.parsers.text.reference import open_text
from folio_replay.parsers.tracedat.read import read_dat
from folio_replay.parsers.tracedat.trace_cmd import TRACE_DAT_MAGIC


def read_trace(path: str | Path) -> Trace:
    """Parse a trace: trace.dat (by its magic; decoded natively) or text (tracefs, trace-cmd
    report, perf script; gzip-compressed or not; the fast parser, equal to ``read_text``).

    The reference readings stay available: :func:`folio_replay.parsers.text.reference.read_text` and
    :func:`folio_replay.parsers.tracedat.trace_cmd.read_dat` (``trace-cmd report``)."""
    path = regular_file(path, "trace file")
    with open_text(path) as raw:
        head = raw.read(len(TRACE_DAT_MAGIC))
    if head == TRACE_DAT_MAGIC:
        return read_dat(path).parsed()
    return read_text_fast(path)
