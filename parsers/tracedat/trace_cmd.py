"""trace.dat through ``trace-cmd report``: the reference reading of trace-cmd's binary format.

``trace-cmd report -t`` prints every record with its full nanosecond timestamp; its text goes
through the trace-cmd report parser of :mod:`folio_replay.parsers.text.reference`. The event
table's ``line`` column then holds the record ordinal (1-based) rather than a line of the report.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
from folio_replay.parsers.table import Trace
from folio_replay.parsers.text.reference import parse_lines

from folio_replay.errors import InputError

TRACE_DAT_MAGIC = b"\x17\x08Dtracing"
TRACE_DAT = "trace-dat"


def _report_lines(path: str, proc: subprocess.Popen) -> Iterator[tuple[int, str]]:
    """Numbered lines of the report's output (UTF-8, else an error naming the line)."""
    assert proc.stdout is not None
    for number, data in enumerate(proc.stdout, start=1):
        try:
            yield number, data.decode("utf-8").rstrip("\n")
        except UnicodeDecodeError:
            raise InputError(path, "not UTF-8 text", line=number) from None


def read_dat(path: str | Path, timeout: float | None = None) -> Trace:
    """Parse a trace.dat file with ``trace-cmd report -t`` (killed after ``timeout`` s)."""
    path = str(path)
    trace_cmd = shutil.which("trace-cmd")
    if trace_cmd is None:
        raise InputError(path, "reading trace.dat needs trace-cmd, which is not on PATH")
    with (
        tempfile.TemporaryFile() as stderr,
        subprocess.Popen(
            [trace_cmd, "report", "-t", path], stdout=subprocess.PIPE, stderr=stderr
        ) as proc,
    ):
        timer = threading.Timer(timeout, proc.kill) if timeout else None
        if timer:
            timer.start()
        try:
            parsed = parse_lines(path, _report_lines(path, proc))
            error = None
        except InputError as err:
            proc.kill()
            error = err
        finally:
            proc.wait()
            if timer:
                timer.cancel()
        stderr.seek(0)
        message = stderr.read().decode("utf-8", "replace").strip()
    if timer is not None and error is None and proc.returncode == -signal.SIGKILL:
        raise InputError(path, f"trace-cmd report did not finish in {timeout} s")
    if proc.returncode not in (0, -signal.SIGKILL):  # killed: by us, after a parse error
        last = message.splitlines()[-1] if message else f"exit {proc.returncode}"
        raise InputError(path, f"trace-cmd report failed: {last}")
    if error is not None:
        raise InputError(path, f"trace-cmd report output: {error.message}", line=error.line)
    table = parsed.table
    ordinals = pa.array(range(1, table.num_rows + 1), type=pa.int64())
    table = table.set_column(table.schema.get_field_index("line"), "line", ordinals)
    return Trace(table, path, TRACE_DAT, parsed.lost)
