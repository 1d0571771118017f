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
