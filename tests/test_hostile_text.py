"""Hostile text traces (issue 15), each one real fixture line edited: a value beyond its
column's type is an error naming the line in both parsers (never wrapped by the fast one),
the fast parser reads every input the reference reads, and the reference raises nothing but
:class:`InputError`."""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import pytest
from folio_replay.parsers import read_trace
from folio_replay.parsers.text.fast import read_text_fast
from folio_replay.parsers.text.reference import read_text
from parse_fixtures import HOST

from folio_replay.errors import InputError

SOURCES = {
    "tracefs": HOST / "tracefs-trace.txt.gz",
    "report": HOST / "report-v6.txt.gz",
    "perf": HOST / "perf.txt.gz",
}


def _lines(name: str) -> list[bytes]:
    return gzip.decompress(SOURCES[name].read_bytes()).splitlines(keepends=True)


def _edit(tmp: Path, name: str, pattern: bytes, replacement: bytes, needle: bytes) -> tuple:
    """The fixture with ``pattern`` replaced in its first line holding ``needle`` (after the
    header); (file, 1-based line number)."""
    lines = _lines(name)
    i = next(k for k, line in enumerate(lines) if k > 30 and needle in line)
    edited = re.sub(pattern, replacement, lines[i], count=1)
    assert edited != lines[i]
    lines[i] = edited
    out = tmp / f"{name}.txt"
    out.write_bytes(b"".join(lines))
    return out, i + 1


def _both_refuse(path: Path) -> tuple[str, str]:
    messages = []
    for read in (read_text, read_text_fast):
        with pytest.raises(InputError) as err:
            read(path)
        messages.append(err.value.one_line())
    return messages[0], messages[1]


PID = {"tracefs": rb"-(\d+) ", "report": rb"-(\d+) ", "perf": rb" (\d+) \["}
PID_REPLACEMENT = {"tracefs": b"-%s ", "report": b"-%s ", "perf": b" %s ["}


@pytest.mark.parametrize("name", list(SOURCES))
@pytest.mark.parametrize(
    ("digits", "what"),
    [(b"4294967296", "pid 4294967296 beyond 32 bits"), (b"9" * 20, f"pid {'9' * 20} beyond")],
    ids=["2^32", "20-digits"],
)
def test_pid_beyond_int32(tmp_path, name, digits, what):
    """``folio_bench-4294967296`` was stored as pid 0 by the fast parser."""
    path, line = _edit(tmp_path, name, PID[name], PID_REPLACEMENT[name] % digits, b"rss_stat")
    reference, fast = _both_refuse(path)
    assert reference == fast
    assert reference.startswith(f"{path}:{line}: {what}")


@pytest.mark.parametrize("name", list(SOURCES))
@pytest.mark.parametrize(
    "stamp", [b"9223372037.000000", b"18446744073709.551616", b"9223372036.854775808"]
)
def test_timestamp_beyond_int64(tmp_path, name, stamp):
    """``9223372037.000000:`` was stored as -9223372036709551616 ns by the fast parser."""
    path, line = _edit(tmp_path, name, rb" \d+\.\d+: ", b" " + stamp + b": ", b"rss_stat")
    reference, fast = _both_refuse(path)
    assert reference == fast
    assert reference == (f"{path}:{line}: timestamp {stamp.decode()} beyond 64 bits of nanoseconds")


def test_latest_timestamp_is_read(tmp_path):
    path, line = _edit(tmp_path, "tracefs", rb" \d+\.\d+: ", b" 9223372036.854775807: ", b"rss")
    for read in (read_text, read_text_fast):
        table = read(path).table
        rows = table.filter(table.column("line").to_numpy() == line)
        assert rows.column("ts_ns").to_pylist() == [(1 << 63) - 1]


@pytest.mark.parametrize("name", list(SOURCES))
def test_cpu_beyond_int32(tmp_path, name):
    path, line = _edit(tmp_path, name, rb"\[\d+\]", b"[2147483648]", b"rss_stat")
    reference, fast = _both_refuse(path)
    assert reference == fast == f"{path}:{line}: cpu 2147483648 beyond 32 bits"


def test_typed_value_of_2_to_64_is_an_error(tmp_path):
    """size=18446744073709551616 (2^64) once wrapped to 0 in the reference parser."""
    path, line = _edit(tmp_path, "tracefs", rb"size=\d+B", b"size=18446744073709551616B", b"rss")
    reference, fast = _both_refuse(path)
    assert (
        reference
        == fast
        == (f"{path}:{line}: cannot parse rss_stat: 18446744073709551616 does not fit in 64 bits")
    )


@pytest.mark.parametrize(
    ("text", "fmt", "lost"),
    [
        (b"cpus=2\n", "trace-cmd-report", []),
        (b"cpus=2\nCPU:1 [5 EVENTS DROPPED]\n", "trace-cmd-report", [(2, 1, 5)]),
        (None, "tracefs-trace", [(13, 1, 5)]),
    ],
    ids=["cpus-only", "report-drop-only", "tracefs-lost-only"],
)
def test_no_event_lines(tmp_path, text, fmt, lost):
    """Files the reference reads as empty tables once raised AttributeError in the fast one."""
    if text is None:  # the real tracefs header, then one lost-events marker
        header = [line for line in _lines("tracefs") if line.startswith(b"#")]
        assert len(header) == 12
        text = b"".join(header) + b"CPU:1 [LOST 5 EVENTS]\n"
    path = tmp_path / "few.txt"
    path.write_bytes(text)
    reference, fast = read_text(path), read_text_fast(path)
    assert reference.table.num_rows == fast.table.num_rows == 0
    assert reference.table.equals(fast.table) and reference.format == fast.format == fmt
    assert [(m.line, m.cpu, m.count) for m in fast.lost] == lost
    assert reference.lost == fast.lost


def test_corrupt_gzip_is_an_input_error(tmp_path):
    """A flipped byte of the gzip CRC: zlib/gzip errors never escape the reference parser,
    and both parsers name the line after the last one read."""
    data = bytearray(SOURCES["tracefs"].read_bytes())
    data[-8] ^= 0xFF  # the member's CRC32
    path = tmp_path / "flipped.txt.gz"
    path.write_bytes(bytes(data))
    reference, fast = _both_refuse(path)
    assert reference == fast
    lines = len(_lines("tracefs"))
    assert reference.startswith(f"{path}:{lines + 1}: truncated or corrupt compressed data (CRC")


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
def test_not_a_regular_file_is_refused_unread(tmp_path, kind):
    path = tmp_path / "trace.txt"
    if kind == "fifo":
        os.mkfifo(path)
        what = "a fifo"
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
        what = "a character device"
    else:
        path.mkdir()
        what = "a directory"
    for read in (read_trace, read_text, read_text_fast):
        with pytest.raises(InputError) as err:
            read(path)
        assert err.value.one_line() == f"{path}: trace file is {what}, not a regular file: not read"
