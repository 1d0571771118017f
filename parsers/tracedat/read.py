"""Reading a trace.dat into the event table, a batch of pages per CPU at a time.

Each CPU's pages are decoded a batch at a time and the CPU streams are merged by time, record
by record, before anything is rendered: the records up to the smallest "last time decoded" of
the CPUs that still hold pages are rendered (:mod:`folio_replay.parsers.tracedat.table`) and
released, the rest (their payloads copied out) wait for the next batch.  Equal times
keep CPU order, as trace-cmd's reader picks the lowest CPU among equal next records, and ring
order within a CPU.  Only a batch per CPU is in memory at once, so
:mod:`folio_replay.parsers.stream`
writes the released tables to Parquet as they come, and :func:`read_dat` keeps them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from folio_replay.parsers import schema
from folio_replay.parsers._native.mapped import populate, release
from folio_replay.parsers.table import META_LOST_MARKERS, LostMarker, Trace
from folio_replay.parsers.tracedat.container import DatFile, open_dat
from folio_replay.parsers.tracedat.kernels import gather_records
from folio_replay.parsers.tracedat.records import RecordCheck
from folio_replay.parsers.tracedat.ring import Damage, decode_pages
from folio_replay.parsers.tracedat.table import Renderer

from folio_replay.errors import InputError, warn

TRACE_DAT = "trace-dat"
META_DAMAGED = b"folio_replay.damaged_pages"
_INT64_MAX = (1 << 63) - 1
PAGES_PER_BATCH = 1024  # ring-buffer pages decoded per CPU and batch (4 MiB of 4 KiB pages)
# a CPU's first batch: 1/16 of that, doubled from batch to batch, so that the first table is
# ready (and written, on the Parquet writer's thread) while the next, larger ones decode
FIRST_BATCH_PAGES = PAGES_PER_BATCH // 16


@dataclass
class _Cursor:
    cpu: int
    pages: np.ndarray
    page_size: int
    file_offset: int
    mapped: bool  # the file's own pages (memory-mapped), not decompressed data
    next_page: int = 0
    batches: int = 0  # batches decoded

    @property
    def done(self) -> bool:
        return self.next_page * self.page_size >= self.pages.size


@dataclass
class _Pending:
    """A lost-events marker waiting for the line of the first record after the loss."""

    cpu: int
    count: int | None
    ts: int


@dataclass
class _Records:
    """Decoded records, not yet rendered: their payloads start at ``payload`` in ``data``."""

    data: np.ndarray
    ts: np.ndarray
    cpu: np.ndarray
    payload: np.ndarray
    length: np.ndarray

    def take(self, rows: np.ndarray | slice) -> _Records:
        """Some of the records (their payloads stay in ``data``)."""
        return _Records(
            self.data, self.ts[rows], self.cpu[rows], self.payload[rows], self.length[rows]
        )

    def compact(self) -> _Records:
        """The same records with their payloads copied out of ``data`` (which may go)."""
        data, payload = gather_records(self.data, self.payload, self.length)
        return _Records(data, self.ts, self.cpu, payload, self.length)


def _concat(parts: list[_Records]) -> _Records:
    """Records of several buffers as records of one."""
    if len(parts) == 1:
        return parts[0]
    bases = np.cumsum([0] + [p.data.size for p in parts[:-1]])
    return _Records(
        np.concatenate([p.data for p in parts]),
        np.concatenate([p.ts for p in parts]),
        np.concatenate([p.cpu for p in parts]),
        np.concatenate([p.payload + b for p, b in zip(parts, bases)]),
        np.concatenate([p.length for p in parts]),
    )


@dataclass(frozen=True)
class DamagedPage:
    """A ring-buffer page skipped as damaged (its events count as lost, number unknown)."""

    cpu: int
    page: int
    offset: int
    what: str


class DatBatches:
    """The event table of a trace.dat as time-ordered tables (``line`` set), with progress
    (``done`` of ``total`` page bytes), the lost-event markers met so far and the damaged
    pages skipped (each also a lost-event marker without a count; a warning names them once
    the file is read)."""

    def __init__(self, path: str) -> None:
        self.path = str(path)
        self.dat: DatFile = open_dat(self.path)
        self.cursors = [
            _Cursor(c.cpu, c.pages, b.page_size, c.file_offset, c.mapped)
            for b in self.dat.buffers
            for c in b.cpus
            if c.pages.size
        ]
        self.total = sum(c.pages.size for c in self.cursors)
        self.done = 0
        self.lost: list[LostMarker] = []
        self.damaged: list[DamagedPage] = []
        self.renderer = Renderer(self.path, self.dat)
        self.records = RecordCheck(self.path, self.dat.formats)

    def __iter__(self) -> Iterator[pa.Table]:
        held: list[_Records] = []
        pending: list[_Pending] = []  # lost-event markers not placed yet
        rendering: list[Future] = []  # the previous batch's tables
        rendering_pages: list[np.ndarray] = []  # and the file pages they are read from
        line = 1
        cursors = list(self.cursors)
        while cursors:
            parts = list(held)
            found: list[_Pending] = []
            mapped: list[np.ndarray] = []  # the file pages this batch reads
            watermark = None
            blind = False  # a CPU with pages left gave no record: nothing is known ready
            for cur in cursors:
                rec = self._decode(cur, found, mapped)
                parts.append(rec)
                if not cur.done:
                    if rec.ts.size == 0:
                        blind = True
                    else:
                        last = int(rec.ts[-1])
                        watermark = last if watermark is None else min(watermark, last)
            cursors = [c for c in cursors if not c.done]
            parts = [p for p in parts if p.ts.size]
            held = []
            following: list[Future] = []
            if parts:
                recs = _concat(parts)
                # one source is in ring order already; else by time, equal times by CPU
                order = None if len(parts) == 1 else np.lexsort((recs.cpu, recs.ts))
                ts = recs.ts if order is None else recs.ts[order]
                if not cursors:
                    ready = ts.size
                elif blind or watermark is None:
                    ready = 0
                else:
                    ready = int(np.searchsorted(ts, watermark, side="right"))
                if order is None:
                    out, rest = recs.take(slice(0, ready)), recs.take(slice(ready, None))
                else:
                    out, rest = recs.take(order[:ready]), recs.take(np.sort(order[ready:]))
                held = [rest.compact()] if rest.ts.size else []
                if ready:
                    # rendered while the previous batch is handed out and the next decoded
                    following = self.renderer.tables(
                        out.data, out.ts, out.cpu, out.payload, first_line=line
                    )
                    line += ready
            yield from self._hand_out(rendering, pending)
            for done in rendering_pages:  # rendered: the process needs them no more
                release(done)
            rendering, rendering_pages = following, mapped
            pending.extend(found)  # losses met in this batch's pages: placed from here on
        yield from self._hand_out(rendering, pending)
        for done in rendering_pages:
            release(done)
        for p in pending:  # a loss after the last record
            self.lost.append(LostMarker(line, p.cpu, p.count))
        if self.damaged:
            first = self.damaged[0]
            warn(
                self.path,
                f"{len(self.damaged)} damaged ring-buffer page(s) skipped, their events counted "
                f"as lost (first: CPU {first.cpu} page {first.page}: {first.what})",
                offset=first.offset,
            )

    def event_counts(self) -> dict[str, int]:
        """Events per name in the tables made so far (all of them once read to the end)."""
        return self.renderer.event_counts()

    def _hand_out(self, rendering: list[Future], pending: list[_Pending]) -> Iterator[pa.Table]:
        """The tables of a batch, once rendered, with the pending markers placed in them."""
        for piece in rendering:
            table = piece.result()
            pending[:] = self._place_markers(table, pending)
            yield table
        rendering.clear()

    def _decode(self, cur: _Cursor, pending: list[_Pending], mapped: list[np.ndarray]) -> _Records:
        """The records of one CPU's next batch of pages (added to ``mapped`` when they are
        the file's own)."""
        count = min(PAGES_PER_BATCH, max(FIRST_BATCH_PAGES, 1) << min(cur.batches, 16))
        start = cur.next_page * cur.page_size
        stop = min(start + count * cur.page_size, cur.pages.size)
        pages = cur.pages[start:stop]
        cur.next_page += count
        cur.batches += 1
        self.done += stop - start
        if cur.mapped:
            populate(pages)
            mapped.append(pages)
        rec = decode_pages(
            self.path,
            pages,
            cur.page_size,
            self.dat.header_page,
            cur.file_offset + start,
            self.renderer.memory,
        )
        self.damaged += [_damaged(cur, start // cur.page_size, d) for d in rec.damaged]
        self.records.check(pages, rec.payload, rec.length, cur.file_offset, start, cur.mapped)
        ts = self._shifted(rec.ts.view(np.int64))
        for page in np.flatnonzero(rec.lost):
            first = int(rec.first[page])
            count = int(rec.lost[page])
            pending.append(
                _Pending(
                    cur.cpu,
                    None if count < 0 else count,
                    int(ts[first]) if first < ts.size else int(ts[-1]) + 1 if ts.size else 0,
                )
            )
        return _Records(pages, ts, np.full(ts.size, cur.cpu, np.int32), rec.payload, rec.length)

    def _shifted(self, ts: np.ndarray) -> np.ndarray:
        """Time stamps plus the file's time offset option; beyond int64 or below 0: an error."""
        offset = self.dat.ts_offset
        if offset and ts.size:
            low, high = int(ts.min()) + offset, int(ts.max()) + offset
            if low < 0 or high > _INT64_MAX:
                raise InputError(
                    self.path,
                    f"time offset option {offset} moves time stamps out of range ({low}..{high})",
                )
        return ts + offset

    def _place_markers(self, out: pa.Table, pending: list[_Pending]) -> list[_Pending]:
        """Give markers the line of their CPU's first record at or after the loss."""
        if not pending or not out.num_rows:
            return pending
        cpu = out.column("cpu").to_numpy()
        ts = out.column("ts_ns").to_numpy()
        lines = out.column("line").to_numpy()
        left = []
        for p in pending:
            hit = np.flatnonzero((cpu == p.cpu) & (ts >= p.ts))
            if hit.size:
                self.lost.append(LostMarker(int(lines[hit[0]]), p.cpu, p.count))
            else:
                left.append(p)
        return left


def _damaged(cur: _Cursor, first_page: int, damage: Damage) -> DamagedPage:
    """A page of a batch reported as damaged, numbered among its CPU's pages (decompressed
    pages: at the offset of the CPU's data block)."""
    offset = damage.offset if cur.mapped else cur.file_offset
    return DamagedPage(cur.cpu, first_page + damage.page, offset, damage.what)


@dataclass
class DecodedDat:
    """A decoded trace.dat: the event table and the lost-event markers of its pages."""

    table: pa.Table
    lost: list[LostMarker]
    dat: DatFile

    def parsed(self) -> Trace:
        """As the result type of :func:`folio_replay.parsers.read_trace`."""
        return Trace(self.table, self.dat.path, TRACE_DAT, self.lost)


def read_dat(path: str) -> DecodedDat:
    """Decode the whole trace.dat at ``path`` into the event table (time-ordered)."""
    batches = DatBatches(path)
    tables = list(batches)
    table = pa.concat_tables(tables) if tables else schema.event_table_schema().empty_table()
    return DecodedDat(table.replace_schema_metadata(metadata(batches)), batches.lost, batches.dat)


def metadata(batches: DatBatches) -> dict[bytes, bytes]:
    """The event table's schema metadata: format, source, lost events and their markers, and
    the damaged pages skipped (only when there are some)."""
    out = {
        schema.META_FORMAT: TRACE_DAT.encode(),
        schema.META_SOURCE: batches.path.encode(),
        schema.META_LOST_EVENTS: str(sum(m.count or 0 for m in batches.lost)).encode(),
        META_LOST_MARKERS: json.dumps([m.__dict__ for m in batches.lost]).encode(),
    }
    if batches.damaged:
        out[META_DAMAGED] = json.dumps([d.__dict__ for d in batches.damaged]).encode()
    return out
