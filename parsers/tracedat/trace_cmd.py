"""trace.dat through ``trace-cmd report``: the reference reading of trace-cmd's binary format.

``trace-cmd report -t`` prints every record with its full nanosecond timestamp; its text goes
through the trace-cmd report parser of :mod:`folio_replay.parsers.text.reference`. The event
table's ``line`` column then holds the record ordinal (1-based) rather than a line of the report.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
from folio_replay.parsers.table import Trace
from folio_replay.parsers.text.reference import parse_lines

from folio_replay.errors import InputError

TRACE_DAT_MAGIC = b"\x17\x08Dtracing"
TRACE_DAT = "trace-dat"


def _report_lines(proc: subprocess.Popen) -> Iterator[tuple[int, str]]:
    """Numbered lines of the report's output."""
    assert proc.stdout is not None
    for number, text in enumerate(proc.stdout, start=1):
        yield number, text.rstrip("\n")


def read_dat(path: str | Path) -> Trace:
    """Parse a trace.dat file with ``trace-cmd report -t``."""
    path = str(path)
    trace_cmd = shutil.which("trace-cmd")
    if trace_cmd is None:
        raise InputError(path, "reading trace.dat needs trace-cmd, which is not on PATH")
    with subprocess.Popen(
        [trace_cmd, "report", "-t", path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    ) as proc:
        try:
            parsed = parse_lines(path, _report_lines(proc))
            error = None
        except InputError as err:
            proc.kill()
            error = err
        stderr = proc.stderr.read() if proc.stderr else ""
    if proc.returncode not in (0, -signal.SIGKILL):  # killed: by us, after a parse error
        last = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {proc.returncode}"
        raise InputError(path, f"trace-cmd report failed: {last}")
    if error is not None:
        raise InputError(path, f"trace-cmd report output: {error.message}", line=error.line)
    table = parsed.table
    ordinals = pa.array(range(1, table.num_rows + 1), type=pa.int64())
    table = table.set_column(table.schema.get_field_index("line"), "line", ordinals)
    return Trace(table, path, TRACE_DAT, parsed.lost)
