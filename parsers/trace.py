"""``read_trace``: any supported trace file into the event table."""

from __future__ import annotations

from pathlib import Path

from folio_replay.errors import InputError
from parsers.report_dat import TRACE_DAT_MAGIC, read_dat
from parsers.table import ParsedTrace
from parsers.text import open_text, read_text


def read_trace(path: str | Path) -> ParsedTrace:
    """Parse a trace: trace.dat (by its magic) or text (tracefs, trace-cmd report, perf script;
    gzip-compressed or not)."""
    path = str(path)
    if not Path(path).is_file():
        raise InputError(path, "no such trace file")
    try:
        with open_text(path) as raw:
            head = raw.read(len(TRACE_DAT_MAGIC))
    except (EOFError, OSError) as err:  # gzip.BadGzipFile is an OSError
        raise InputError(path, f"truncated or corrupt compressed data ({err})", line=1) from None
    if head == TRACE_DAT_MAGIC:
        return read_dat(path)
    return read_text(path)
