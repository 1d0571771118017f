"""Outputs that never destroy (issue 15), with the real commands on real fixtures: ``--force``
never replaces an input of the run, a device, a fifo or a directory folio-replay did not
write; a missing parent directory is an error; a signal leaves no temporary file and exits
130; a refused output is one line and exit code 2."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from folio_replay.replay.costs.tables import COSTS_DIR
from parse_fixtures import BUNDLES, HOST

from folio_replay.cli import main

X86_612 = BUNDLES / "x86_64" / "6.12.117+deb13-cloud-amd64"
TRACE = HOST / "tracefs-trace.txt.gz"


def _digest(path: Path) -> str:
    """sha256 over a file or a directory tree (names and contents)."""
    h = hashlib.sha256()
    for p in sorted([path, *path.rglob("*")] if path.is_dir() else [path]):
        h.update(str(p.relative_to(path)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def _run(*args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, list(args))
    assert not isinstance(result.exception, (AssertionError, TypeError, ValueError))
    return result.exit_code, result.stderr.splitlines()


@pytest.fixture
def bundle(tmp_path):
    target = tmp_path / "B"
    shutil.copytree(X86_612 / "microbench", target)
    return target


def test_replay_over_its_own_bundle_is_refused(bundle):
    """``replay B -o B --force`` once deleted the bundle and put the report in its place."""
    before = _digest(bundle)
    code, err = _run("replay", str(bundle), "-o", str(bundle), "--force")
    assert code == 2
    assert err == [
        f"folio-replay: error: {bundle}: is an input of this run ({bundle}): refusing to "
        "write over it"
    ]
    assert _digest(bundle) == before


def test_calibrate_over_its_cost_table_is_refused(tmp_path):
    table = tmp_path / "mine.toml"
    shutil.copy(COSTS_DIR / "x86.toml", table)
    before = _digest(table)
    code, err = _run(
        "calibrate",
        str(X86_612 / "microbench"),
        str(X86_612 / "redirty-last-64k"),
        "--costs",
        str(table),
        "-o",
        str(table),
        "--force",
    )
    assert code == 2
    assert err == [
        f"folio-replay: error: {table}: is an input of this run ({table}): refusing to "
        "write over it"
    ]
    assert _digest(table) == before


def test_parse_over_its_trace_is_refused(tmp_path):
    trace = tmp_path / "trace.txt.gz"
    shutil.copy(TRACE, trace)
    code, err = _run("parse", str(trace), "-o", str(trace), "--force")
    assert code == 2 and "is an input of this run" in err[0] and len(err) == 1
    assert _digest(trace) == _digest(TRACE)


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_device_node_is_never_replaced(tmp_path):
    """``-o /dev/full --force`` once replaced the device with a regular file; here a copy of
    /dev/full's node (1, 7) made in the test directory."""
    node = tmp_path / "full"
    os.mknod(node, 0o666 | 0o020000, os.makedev(1, 7))
    code, err = _run("parse", str(TRACE), "-o", str(node), "--force")
    assert code == 2
    assert err == [
        f"folio-replay: error: {node}: exists and is not a regular file: refusing to replace it"
    ]
    assert node.is_char_device() and os.stat(node).st_rdev == os.makedev(1, 7)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


def test_fifo_and_foreign_directory_are_never_replaced(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    code, err = _run("parse", str(TRACE), "-o", str(fifo), "--force")
    assert code == 2 and err[0].endswith("exists and is not a regular file: refusing to replace it")
    assert fifo.is_fifo()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me\n")
    code, err = _run("replay", str(X86_612 / "microbench"), "-o", str(mine), "--force")
    assert code == 2 and "is a directory folio-replay did not write" in err[0]
    assert (mine / "notes.txt").read_text() == "keep me\n"


@pytest.mark.parametrize("command", ["parse", "replay", "calibrate"])
def test_missing_parent_directory_is_an_error(tmp_path, command):
    """``replay`` and ``calibrate`` once exited 0 when the parent of -o did not exist."""
    target = tmp_path / "absent" / "out"
    args = {
        "parse": ["parse", str(TRACE)],
        "replay": ["replay", str(X86_612 / "microbench")],
        "calibrate": [
            "calibrate",
            str(X86_612 / "microbench"),
            str(X86_612 / "redirty-last-64k"),
        ],
    }[command]
    code, err = _run(*args, "-o", str(target))
    assert code == 2
    assert err == [
        f"folio-replay: error: {target}: parent directory {target.parent} does not exist"
    ]
    assert not target.parent.exists()


def test_calibrate_into_a_directory_is_one_line(tmp_path):
    """``calibrate -o DIR`` once printed click's multi-line usage error."""
    code, err = _run("calibrate", str(X86_612 / "microbench"), "-o", str(tmp_path))
    assert code == 2
    assert err == [f"folio-replay: error: {tmp_path}: is a directory (-o/--output)"]


@pytest.fixture(scope="module")
def big_trace(tmp_path_factory) -> Path:
    """The tracefs fixture's event lines repeated to ~60 MiB: a parse that takes a while."""
    lines = gzip.decompress(TRACE.read_bytes()).splitlines(keepends=True)
    header = b"".join(line for line in lines if line.startswith(b"#"))
    body = b"".join(line for line in lines if not line.startswith(b"#"))
    path = tmp_path_factory.mktemp("big") / "big.txt"
    with open(path, "wb") as fh:
        fh.write(header)
        for _ in range((60 << 20) // len(body)):
            fh.write(body)
    return path


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_removes_temporaries_and_exits_130(tmp_path, big_trace, signum):
    """SIGTERM once left the ``.NAME.PID.tmp`` file of the output behind."""
    out = tmp_path / "events.parquet"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from folio_replay.cli import main; main()",
            "parse",
            str(big_trace),
            "-o",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".events.parquet.*.tmp")):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert stderr == "folio-replay: interrupted\n"
    assert list(tmp_path.iterdir()) == []
