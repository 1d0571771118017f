"""Bad input to ``folio-replay parse``: one line naming the file and line, exit code 2, no
traceback. Every bad file is made here from a real fixture (cut, spliced or foreign)."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from parse_fixtures import HOST, REPO

from folio_replay.cli import main

TRACE = HOST / "tracefs-trace.txt.gz"
PERF = HOST / "perf.txt.gz"


def _lines(path: Path) -> list[bytes]:
    return gzip.decompress(path.read_bytes()).splitlines(keepends=True)


def _first(lines: list[bytes], needle: bytes, after: int = 20) -> int:
    """0-based index of the first line after ``after`` that contains ``needle``."""
    return next(i for i, line in enumerate(lines) if i > after and needle in line)


def truncated_line(tmp: Path) -> tuple[Path, str]:
    lines = _lines(TRACE)
    i = _first(lines, b"rss_stat:", after=100)
    cut = b"".join(lines[:i]) + lines[i][: len(lines[i]) // 2]  # the file ends mid-line
    (tmp / "cut.txt").write_bytes(cut)
    return tmp / "cut.txt", f":{i + 1}: truncated line"


def truncated_gzip(tmp: Path) -> tuple[Path, str]:
    data = TRACE.read_bytes()
    (tmp / "cut.txt.gz").write_bytes(data[: len(data) // 2])
    return tmp / "cut.txt.gz", "truncated or corrupt compressed data"


def missing_field(tmp: Path) -> tuple[Path, str]:
    lines = _lines(TRACE)
    i = _first(lines, b"tlb_flush: pages:")
    lines[i] = lines[i].split(b" reason:")[0] + b"\n"  # a line cut short of its reason
    (tmp / "short.txt").write_bytes(b"".join(lines))
    return tmp / "short.txt", f":{i + 1}: cannot parse tlb_flush: no 'reason'"


def foreign_line(tmp: Path) -> tuple[Path, str]:
    lines = _lines(TRACE)
    i = _first(lines, b"mm_page_alloc:")
    lines.insert(i, _lines(PERF)[5])  # a perf script line inside tracefs text
    (tmp / "spliced.txt").write_bytes(b"".join(lines))
    return tmp / "spliced.txt", f":{i + 1}: cannot parse tracefs-trace line"


def binary_garbage(tmp: Path) -> tuple[Path, str]:
    (tmp / "garbage.bin").write_bytes(bytes(range(256)) * 64)
    return tmp / "garbage.bin", "@0x0: binary data, not a text trace"


def empty_file(tmp: Path) -> tuple[Path, str]:
    (tmp / "empty.txt").write_bytes(b"")
    return tmp / "empty.txt", ": empty file"


def unknown_format(tmp: Path) -> tuple[Path, str]:
    source = REPO / "fixtures" / "lab" / "workload" / "folio_bench.c"  # text, but no trace
    (tmp / "folio_bench.c").write_bytes(source.read_bytes())
    return tmp / "folio_bench.c", ":1: unknown format"


def no_such_file(tmp: Path) -> tuple[Path, str]:
    return tmp / "absent.txt", ": no such trace file"


def truncated_dat_header(tmp: Path) -> tuple[Path, str]:
    (tmp / "cut.dat").write_bytes((HOST / "lost.dat").read_bytes()[:20])
    return tmp / "cut.dat", "@0x12: truncated trace.dat: unterminated compression name"


def truncated_dat_data(tmp: Path) -> tuple[Path, str]:
    (tmp / "cut.dat").write_bytes((HOST / "lost.dat").read_bytes()[:300_000])
    return tmp / "cut.dat", "@0x116413: truncated trace.dat: section id runs past the end"


BAD_INPUTS = [
    truncated_line,
    truncated_gzip,
    missing_field,
    foreign_line,
    binary_garbage,
    empty_file,
    unknown_format,
    no_such_file,
    truncated_dat_header,
    truncated_dat_data,
]


@pytest.mark.parametrize("make", BAD_INPUTS, ids=lambda f: getattr(f, "__name__", None))
def test_cli_runner_one_line_exit_2(tmp_path, make):
    bad, expected = make(tmp_path)
    out = tmp_path / "events.parquet"
    result = CliRunner().invoke(main, ["parse", str(bad), "-o", str(out)])
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"folio-replay: error: {bad}")
    assert expected in lines[0]
    assert not out.exists()


@pytest.mark.parametrize(
    "make", [truncated_line, binary_garbage, empty_file, unknown_format], ids=lambda f: f.__name__
)
def test_subprocess_one_line_exit_2(tmp_path, make):
    bad, expected = make(tmp_path)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from folio_replay.cli import main; main()",
            "parse",
            str(bad),
            "-o",
            str(tmp_path / "e.parquet"),
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and expected in proc.stderr
    assert proc.stdout == ""
