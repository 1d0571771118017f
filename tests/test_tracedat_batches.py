"""Decoding a trace.dat a batch at a time: any batch size, any number of render threads and
reused memory give the same table as one whole read (real host fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from folio_replay.parsers._native.recycle import BufferPool
from folio_replay.parsers.tracedat import read as tracedat_read
from folio_replay.parsers.tracedat import table as tracedat_table
from folio_replay.parsers.tracedat.read import DatBatches, read_dat
from parse_fixtures import HOST, fixture_id, trace_fixtures

DAT_FIXTURES = [p for p in trace_fixtures() if p.suffix == ".dat"]


@pytest.mark.parametrize("path", DAT_FIXTURES, ids=fixture_id)
def test_small_batches_and_pieces_give_the_whole_table(path: Path, monkeypatch):
    whole = read_dat(str(path))
    monkeypatch.setattr(tracedat_read, "PAGES_PER_BATCH", 1)
    monkeypatch.setattr(tracedat_table, "MIN_PART_ROWS", 7)
    monkeypatch.setattr(tracedat_table, "RENDER_THREADS", 3)
    batches = DatBatches(str(path))
    tables = list(batches)
    assert len(tables) > 3
    assert pa.concat_tables(tables).equals(whole.table.replace_schema_metadata(None))
    assert batches.lost == whole.lost


def test_dropped_tables_lend_their_memory_and_held_ones_keep_theirs(monkeypatch):
    path = str(HOST / "trace-v6.dat")
    whole = read_dat(path).table.replace_schema_metadata(None)
    monkeypatch.setattr(tracedat_read, "PAGES_PER_BATCH", 8)
    batches = DatBatches(path)
    held, row = [], 0
    for k, table in enumerate(batches):
        if k % 2 == 0:
            held.append((row, table))
        row += table.num_rows
    assert row == whole.num_rows
    assert batches.renderer.memory.reused > 0
    for start, table in held:
        assert table.equals(whole.slice(start, table.num_rows))


def test_pool_reuses_only_unreferenced_memory():
    pool = BufferPool()
    first = pool.empty((4, 1 << 15), np.int64)
    where = first.ctypes.data
    column = pa.Array.from_buffers(pa.int64(), 1 << 15, [None, pa.py_buffer(first[1])])
    del first
    assert pool.empty((4, 1 << 15), np.int64).ctypes.data != where  # the column holds it
    del column
    assert pool.empty((4, 1 << 15), np.int64).ctypes.data == where
    assert pool.zeros(1 << 17, np.uint8).sum() == 0
