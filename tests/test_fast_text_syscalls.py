"""tracefs syscall lines (``sys_NAME(ARGS)`` / ``sys_NAME -> RET``) in the fast text parser:
real ones are scanned by the compiled path, and every shape, real or edited, gives the
reference parser's rows and errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from folio_replay.parsers.text import scan
from folio_replay.parsers.text.fast import padded, read_text_fast
from folio_replay.parsers.text.reference import read_text
from parse_fixtures import REPO

from folio_replay.errors import InputError

CAPTURE = REPO / "fixtures/bundles/host/6.18.44-fc-v1300/process-madvise/trace.txt.gz"


def _lines() -> list[bytes]:
    return gzip.decompress(CAPTURE.read_bytes()).splitlines(keepends=True)


def _kinds(lines: list[bytes]) -> np.ndarray:
    data = b"".join(lines)
    buf = padded(data)
    ends = np.flatnonzero(buf[: len(data)] == scan.NL)
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    return scan.scan_lines(buf, starts, ends, scan.TRACEFS)[0]


def test_real_syscall_lines_take_the_compiled_path():
    lines = _lines()
    enter = [t for t in lines if b": sys_" in t and b"(" in t.split(b": sys_")[1]]
    exit_ = [t for t in lines if b": sys_" in t and b" -> " in t]
    # munmap, process_madvise and write; the first exit is of a write entered before the capture
    assert len(enter) == 7 and len(exit_) == 8
    assert set(_kinds(enter).tolist()) == {scan.SYSCALL_ENTER}
    assert set(_kinds(exit_).tolist()) == {scan.SYSCALL_EXIT}


def test_real_syscall_rows_are_the_reference_rows():
    fast = read_text_fast(CAPTURE).table
    assert fast.equals(read_text(CAPTURE).table, check_metadata=True)
    rows = fast.to_pandas()
    madvise = rows[rows["event"] == "sys_enter_process_madvise"]
    assert len(madvise) == 1 and set(madvise["process_madvise.behavior"]) == {"MADV_PAGEOUT"}
    exits = rows[rows["event"] == "sys_exit_munmap"]
    assert len(exits) and (exits["syscall.ret"] == 0).all()


# edits of a real "sys_munmap(addr: ..., len: ...)" line: (old, new), each one the reference
# reads its own way (another event, fields, a fallback) or refuses
EDITS = [
    (b"sys_munmap(", b"sys_munmap ("),  # not a syscall body: the reference's error
    (b"sys_munmap(", b"sys_("),  # no name after sys_
    (b"sys_munmap(", b"sys_munmap(("),
    (b")\n", b") \n"),  # ")" not at the end
    (b")\n", b")\r\n"),  # CR dropped, as the reference drops it
    (b")\n", b"))\n"),
    (b"sys_munmap(addr: 0x", b"sys_munmap(addr: 0X"),  # a typed value of another shape
    (b"sys_munmap(addr: ", b"sys_munmap("),  # no key: typed fields missing
    (b"sys_munmap(", b"sysx_munmap("),
    (b"sys_munmap(", b"munmap("),
]
EXIT_EDITS = [
    (b" -> ", b" ->"),
    (b" -> ", b"-> "),
    (b" -> 0x0", b" -> "),
    (b" -> 0x0", b" -> -1"),
    (b" -> 0x0", b" -> 0x0 0x1"),
    (b"sys_munmap -> ", b"sys_ -> "),
]


def _edited(tmp_path: Path, needle: bytes, old: bytes, new: bytes) -> Path:
    lines = _lines()
    i = next(k for k, t in enumerate(lines) if needle in t)
    assert old in lines[i]
    lines[i] = lines[i].replace(old, new, 1)
    path = tmp_path / "trace.txt"
    path.write_bytes(b"".join(lines))
    return path


def _same_outcome(path: Path) -> None:
    try:
        ref = read_text(path)
    except InputError as error:
        with pytest.raises(InputError) as fast:
            read_text_fast(path)
        assert fast.value.one_line() == error.one_line()
        return
    assert read_text_fast(path).table.equals(ref.table, check_metadata=True)


@pytest.mark.parametrize("old,new", EDITS, ids=lambda b: b.decode(errors="replace"))
def test_edited_enter_lines_read_as_the_reference_reads_them(tmp_path: Path, old, new):
    _same_outcome(_edited(tmp_path, b": sys_munmap(", old, new))


@pytest.mark.parametrize("old,new", EXIT_EDITS, ids=lambda b: b.decode(errors="replace"))
def test_edited_exit_lines_read_as_the_reference_reads_them(tmp_path: Path, old, new):
    _same_outcome(_edited(tmp_path, b": sys_munmap -> ", old, new))


def test_a_trace_of_syscall_lines_only(tmp_path: Path):
    """A file holding only syscall lines (issue 13 saw an AttributeError on one)."""
    lines = _lines()
    header = [t for t in lines[:20] if t.startswith(b"#")]
    calls = [t for t in lines if b": sys_" in t]
    path = tmp_path / "trace.txt"
    path.write_bytes(b"".join(header + calls))
    fast = read_text_fast(path).table
    assert fast.num_rows == len(calls) == 15
    assert fast.equals(read_text(path).table, check_metadata=True)
