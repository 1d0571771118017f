"""The event table's Parquet writer: its encodings, its writer thread and its errors, on a real
capture's events."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from folio_replay.parsers.parquet import EventParquetWriter
from folio_replay.parsers.schema import event_table_schema
from folio_replay.parsers.stream import EventChunks
from parse_fixtures import REPO

CAPTURE = REPO / "fixtures/bundles/host/6.18.44-fc-v1300/mixed-kinds/trace.txt.gz"


def _chunks() -> list[pa.Table]:
    return list(EventChunks(str(CAPTURE), chunk_bytes=1 << 20))


def _writers() -> int:
    return sum(t.name == "parquet-writer" for t in threading.enumerate())


def test_tables_come_back_unchanged_one_row_group_each(tmp_path: Path):
    chunks = _chunks()
    assert len(chunks) > 2
    path = tmp_path / "events.parquet"
    with EventParquetWriter(path, event_table_schema(), store_schema=False) as writer:
        for table in chunks:
            writer.write_table(table)
        writer.add_key_value_metadata({"k": "v"})
    back = pq.read_table(path)
    assert back.equals(pa.concat_tables(chunks).replace_schema_metadata(None))
    meta = pq.read_metadata(path)
    assert meta.num_row_groups == len(chunks)
    assert meta.metadata[b"k"] == b"v"
    columns = {meta.row_group(0).column(i).path_in_schema: i for i in range(meta.num_columns)}
    group = meta.row_group(0)
    assert "DELTA_BINARY_PACKED" in group.column(columns["ts_ns"]).encodings
    assert group.column(columns["ts_ns"]).statistics is not None
    assert group.column(columns["event"]).has_dictionary_page
    assert not group.column(columns["fields"]).has_dictionary_page
    assert not group.column(columns["page.pfn"]).has_dictionary_page
    assert _writers() == 0


def test_an_error_of_the_thread_reaches_the_caller(tmp_path: Path):
    table = _chunks()[0]
    wrong = pa.table({"ts_ns": pa.array([1, 2])})
    with (
        pytest.raises(ValueError),
        EventParquetWriter(tmp_path / "e.parquet", table.schema) as writer,
    ):
        writer.write_table(table)
        writer.write_table(wrong)  # written on the thread: fails there
        writer.write_table(table)
    assert _writers() == 0


def test_an_error_of_the_caller_stops_the_thread(tmp_path: Path):
    table = _chunks()[0]
    with (
        pytest.raises(KeyboardInterrupt),
        EventParquetWriter(tmp_path / "e.parquet", table.schema) as writer,
    ):
        writer.write_table(table)
        raise KeyboardInterrupt
    assert _writers() == 0
