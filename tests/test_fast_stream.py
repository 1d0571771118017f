"""Streaming into Parquet row groups gives the same rows as the in-memory readings."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from folio_replay.parsers import stream
from folio_replay.parsers.schema import META_LOST_EVENTS
from folio_replay.parsers.text.fast import read_text_fast
from folio_replay.parsers.tracedat import read as tracedat_read
from folio_replay.parsers.tracedat.read import read_dat
from parse_fixtures import HOST

from folio_replay.errors import InputError


@pytest.mark.parametrize("name", ["tracefs-pipe-lost.txt.gz", "perf.txt.gz", "report-v6.txt.gz"])
def test_text_in_row_groups(tmp_path: Path, name: str):
    out = tmp_path / "events.parquet"
    result = stream.stream_parquet(HOST / name, out, chunk_bytes=32 << 10, progress=False)
    table = pq.read_table(out)
    ref = read_text_fast(HOST / name)
    assert table.equals(ref.table)
    assert result.rows == table.num_rows
    assert pq.ParquetFile(out).num_row_groups > 1
    assert table.schema.metadata[META_LOST_EVENTS] == str(ref.lost_events).encode()


@pytest.mark.parametrize("name", ["trace-v6.dat", "trace-v7-zstd.dat", "lost.dat"])
def test_dat_cpu_streams_merge_in_time_order(tmp_path: Path, monkeypatch, name: str):
    """Batches of 4 pages per CPU: the watermark merge must give read_dat's order exactly."""
    ref = read_dat(HOST / name)  # batches of 1024 pages: one batch per CPU here
    monkeypatch.setattr(tracedat_read, "PAGES_PER_BATCH", 4)
    out = tmp_path / "events.parquet"
    result = stream.stream_parquet(HOST / name, out, progress=False)
    table = pq.read_table(out)
    assert table.equals(ref.table)
    pages = sum(c.pages.size for b in ref.dat.buffers for c in b.cpus) // 4096
    assert pq.ParquetFile(out).num_row_groups >= pages // (4 * 2)
    assert result.lost_events == sum(m.count or 0 for m in ref.lost)
    assert result.lost == ref.lost


def test_progress_only_when_asked(tmp_path: Path, capsys):
    src = HOST / "tracefs-trace.txt.gz"
    stream.stream_parquet(src, tmp_path / "a.parquet", progress=False)
    assert capsys.readouterr().err == ""
    stream.stream_parquet(src, tmp_path / "b.parquet")  # default: stderr is no terminal here
    assert capsys.readouterr().err == ""
    stream.stream_parquet(src, tmp_path / "c.parquet", progress=True)
    err = capsys.readouterr().err
    # rich's bar, drawn once at the end off a terminal: the file's name, its events, the rate
    assert "parse tracefs-trace.txt.gz" in err and "2,031 events" in err and "M events/s" in err


def test_no_overwrite_without_force(tmp_path: Path):
    out = tmp_path / "events.parquet"
    out.write_bytes(b"user data")
    with pytest.raises(InputError):
        stream.stream_parquet(HOST / "tracefs-trace.txt.gz", out, progress=False)
    assert out.read_bytes() == b"user data"
    stream.stream_parquet(HOST / "tracefs-trace.txt.gz", out, force=True, progress=False)
    assert pq.read_table(out).num_rows == 2031
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.parquet"]
