"""Streaming a trace of any size into Parquet: chunk by chunk, one row group per chunk, in
bounded memory, with progress on a terminal.

* text (tracefs, trace-cmd report, perf script; gzip or not): chunks of whole lines through
  the fast text parser, written in file order (the kernel already merged the CPUs);
* trace.dat: each CPU's pages decoded a batch at a time and the CPU streams merged by time
  (:class:`folio_replay.parsers.tracedat.read.DatBatches`), with only a batch per CPU in memory.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from folio_replay.parsers import schema
from folio_replay.parsers.files import regular_file
from folio_replay.parsers.parquet import EventParquetWriter
from folio_replay.parsers.table import META_LOST_MARKERS, LostCounts, LostMarker
from folio_replay.parsers.tracedat.container import is_trace_dat
from folio_replay.parsers.tracedat.read import TRACE_DAT, DatBatches

from folio_replay.outputs import replace_file
from folio_replay.progress import byte_progress


@dataclass
class StreamResult(LostCounts):
    """What was written: rows, rows per event, lost-event markers, the input's format."""

    path: str
    format: str
    rows: int = 0
    counts: Counter = field(default_factory=Counter)
    lost: list[LostMarker] = field(default_factory=list)

    def event_counts(self) -> dict[str, int]:
        """Events per name, most frequent first (as ``Trace.event_counts``)."""
        return dict(sorted(self.counts.items(), key=lambda p: (-p[1], p[0])))


# Text parsed into Parquet a row group per 32 MiB of text (~280k events): smaller row groups
# compress worse (0.69 instead of 0.57 GiB of Parquet for 5 GiB of tracefs text).
STREAM_CHUNK_BYTES = 32 << 20
# the losses known beyond a trace's own lost-event markers, given them
UnmarkedLosses = Callable[[list[LostMarker]], list[LostMarker]]


def stream_parquet(
    source: str | Path,
    out: str | Path,
    force: bool = False,
    progress: bool | None = None,
    chunk_bytes: int = STREAM_CHUNK_BYTES,
    unmarked_losses: UnmarkedLosses | None = None,
) -> StreamResult:
    """Parse ``source`` into the Parquet file ``out`` (through a temporary name, see
    :mod:`folio_replay.outputs`); ``progress``: show progress (default: on a terminal);
    ``unmarked_losses``: losses known beyond the trace's markers, given them (a bundle's
    meta.json: :meth:`~folio_replay.parsers.bundle.Bundle.unmarked_losses`)."""
    path, out = regular_file(source, "trace file"), Path(out)
    results: list[StreamResult] = []

    def write(tmp: Path) -> None:
        # no ARROW:schema: Parquet types give the same columns back, and the key-value metadata
        # (written at the end, when lost events are known) becomes the schema metadata on reading
        with EventParquetWriter(tmp, schema.event_table_schema(), store_schema=False) as writer:
            chunks = EventChunks(path, chunk_bytes, unmarked_losses)
            with byte_progress(f"parse {Path(path).name}", chunks.total, progress) as advance:
                result = _stream(chunks, writer, advance)
            writer.add_key_value_metadata(stream_metadata(result))
        results.append(result)

    replace_file(out, write, force, inputs=[path])
    return results[0]


def _write(writer: EventParquetWriter, table: pa.Table, result: StreamResult, count: bool) -> None:
    if table.num_rows:
        writer.write_table(table)
        result.rows += table.num_rows
        if count:
            for item in table.column("event").value_counts().to_pylist():
                result.counts[item["values"]] += item["counts"]


class EventChunks(LostCounts):
    """A trace file's event table a chunk at a time: text in chunks of whole lines through the
    fast parser (``chunk_bytes`` of text each), trace.dat a batch of pages per CPU at a time,
    the CPU streams merged by time. ``lost`` holds the lost-event markers once the chunks have
    been read to the end; ``position`` and ``total`` say how far the reading is (bytes of
    text, or pages). ``unmarked_losses``: losses known beyond the trace's markers, given them
    (a bundle's meta.json: :meth:`~folio_replay.parsers.bundle.Bundle.unmarked_losses`),
    added to ``lost`` at the end."""

    def __init__(
        self,
        source: str,
        chunk_bytes: int = STREAM_CHUNK_BYTES,
        unmarked_losses: UnmarkedLosses | None = None,
    ) -> None:
        self.path = source
        self._unmarked_losses = unmarked_losses
        with open(source, "rb") as fh:
            head = fh.read(16)
        self.lost: list[LostMarker] = []
        if is_trace_dat(head):
            self._batches: DatBatches | None = DatBatches(source)
            self.format = TRACE_DAT
            self.total = self._batches.total or 1
        else:
            self._batches = None
            from folio_replay.parsers.text.fast import parse_chunks  # not for trace.dat

            self._chunks = parse_chunks(source, chunk_bytes)
            self.format = self._chunks.fmt
            self.total = os.path.getsize(source)
        self.position = 0

    def __iter__(self) -> Iterator[pa.Table]:
        if self._batches is not None:
            for table in self._batches:
                self.position = min(self._batches.done, self.total)
                yield table
            self._finish(self._batches.lost)
        else:
            for table in self._chunks.tables:
                self.position = self._chunks.position
                yield table
            self._finish(self._chunks.lost)

    def event_counts(self) -> dict[str, int] | None:
        """Events per name of the chunks read, as the trace.dat decoder counted them; None for
        text (count the tables)."""
        return None if self._batches is None else self._batches.event_counts()

    def _finish(self, markers: list[LostMarker]) -> None:
        """The trace's markers, then the losses known beyond them."""
        beyond = self._unmarked_losses(markers) if self._unmarked_losses else []
        self.lost = [*markers, *beyond]


def _stream(
    chunks: EventChunks, writer: EventParquetWriter, advance: Callable[..., None]
) -> StreamResult:
    result = StreamResult(chunks.path, chunks.format)
    advance(0, 0, chunks.total)
    counted = chunks.event_counts() is not None  # trace.dat: no compute kernels (30 ms import)
    for table in chunks:
        _write(writer, table, result, count=not counted)
        advance(chunks.position, result.rows)
    result.lost = chunks.lost
    if counted:
        result.counts.update(chunks.event_counts() or {})
    return result


def stream_metadata(result: StreamResult | EventChunks) -> dict[bytes, bytes]:
    """Format, source and lost events (of a stream read to its end), as the event table's
    schema metadata."""
    return {
        schema.META_FORMAT: result.format.encode(),
        schema.META_SOURCE: result.path.encode(),
        schema.META_LOST_EVENTS: str(result.lost_events).encode(),
        META_LOST_MARKERS: json.dumps([m.__dict__ for m in result.lost]).encode(),
    }
