"""``folio-replay parse``: Parquet output, overwrite rules, bundle input, the summary line."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from folio_replay.parsers import read_trace
from parse_fixtures import BUNDLES, HOST, independent_counts, raw_lines

PIPE_LOST = HOST / "tracefs-pipe-lost.txt.gz"


def test_writes_the_event_table_and_a_summary(tmp_path, cli):
    out = tmp_path / "events.parquet"
    result = cli("parse", PIPE_LOST, "-o", out)
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    counts, lost, _ = independent_counts(raw_lines(PIPE_LOST))
    assert table.num_rows == sum(counts.values())
    assert table.equals(read_trace(PIPE_LOST).table)
    assert int(table.schema.metadata[b"folio_replay.lost_events"]) == lost == 1373
    summary = result.stdout.strip()
    assert "\n" not in summary
    assert f"{table.num_rows} events" in summary and "1373 lost events" in summary
    for name, n in counts.items():
        assert f"{name} {n}" in summary
    assert [p.name for p in tmp_path.iterdir()] == ["events.parquet"]  # no temp file left


def test_refuses_to_overwrite_without_force(tmp_path, cli):
    out = tmp_path / "events.parquet"
    out.write_bytes(b"user data")
    result = cli("parse", PIPE_LOST, "-o", out)
    assert result.exit_code == 2
    assert "already exists (use --force" in result.stderr
    assert out.read_bytes() == b"user data"
    result = cli("parse", PIPE_LOST, "-o", out, "--force")
    assert result.exit_code == 0
    assert pq.read_table(out).num_rows > 0


BUNDLE_DIRS = sorted(p.parent for p in BUNDLES.glob("**/meta.json"))


@pytest.mark.skipif(not BUNDLE_DIRS, reason="no bundle in fixtures/bundles")
def test_bundle_directory_parses_its_trace(tmp_path, cli):
    bundle = BUNDLE_DIRS[0]
    out = tmp_path / "events.parquet"
    result = cli("parse", bundle, "-o", out)
    assert result.exit_code == 0, result.output
    trace = next(p for p in sorted(bundle.iterdir()) if p.name.startswith(("trace", "perf")))
    counts, _, _ = independent_counts(raw_lines(trace))
    assert pq.read_table(out).num_rows == sum(counts.values())


def _run_on_a_terminal(argv: list[str], env: dict) -> tuple[int, str]:
    """Run ``argv`` with its stderr on a pseudo-terminal: (exit code, what it wrote there,
    progress bars included), read while it runs (a full terminal buffer would block it)."""
    import os
    import subprocess
    import threading

    main, side = os.openpty()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # EIO: the other side is closed
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=side)
    os.close(side)
    reader.join()
    os.close(main)
    return done.returncode, b"".join(chunks).decode(errors="replace")


def test_says_on_a_terminal_when_the_readers_are_compiled(tmp_path):
    """A first run of the text reader (here: an empty numba cache) says on one line of its
    terminal that it compiles; a run that loads the cached code says nothing; without a
    terminal (a script reading stderr) nothing is added. The trace.dat reader is compiled
    when the package is installed (plain C): its first run says nothing."""
    import os
    import sys
    from pathlib import Path

    cli = Path(sys.executable).with_name("folio-replay")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    argv = [str(cli), "parse", str(PIPE_LOST), "-o", str(tmp_path / "e.parquet")]
    code, said = _run_on_a_terminal(argv, env)
    assert code == 0 and said.count("folio-replay: note: compiling the trace readers") == 1
    code, said = _run_on_a_terminal([*argv, "--force"], env)
    assert code == 0 and "note:" not in said
    dat = [str(cli), "parse", str(HOST / "trace-v6.dat"), "-o", str(tmp_path / "d.parquet")]
    code, said = _run_on_a_terminal(dat, {**env, "NUMBA_CACHE_DIR": str(tmp_path / "dat")})
    assert code == 0 and "note:" not in said
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "cold")
    import subprocess

    piped = subprocess.run([*argv, "--force"], env=env, capture_output=True, text=True)
    assert piped.returncode == 0 and piped.stderr == ""


def test_a_trace_dat_parse_imports_only_what_it_uses(tmp_path):
    """Start-up counts on a small file (issue 13: 3x ``trace-cmd report`` at a million
    events): without a terminal, a trace.dat parse imports no JIT, no progress drawing, no
    pandas and no pyarrow.compute wrappers (30 ms), and still writes the table and counts its
    events."""
    import subprocess
    import sys

    dat, out = str(HOST / "trace-v6.dat"), tmp_path / "d.parquet"
    probe = (
        "import sys\n"
        "from folio_replay.cli import main\n"
        f"sys.argv = ['folio-replay', 'parse', {dat!r}, '-o', {str(out)!r}]\n"
        "try:\n    main()\nexcept SystemExit as done:\n    code = done.code\n"
        "print(code, *sorted(m for m in ('numba', 'rich', 'pandas', 'pyarrow.compute')"
        " if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "0"
    trace = read_trace(dat)
    assert pq.read_table(out).num_rows == trace.table.num_rows
    counts = ", ".join(f"{name} {n}" for name, n in trace.event_counts().items())
    assert f"({counts})" in done.stdout  # counted by the decoder, as by the table
