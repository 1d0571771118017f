"""Decode ftrace ring-buffer pages: one CPU's pages walked record by record (compiled loop in
:mod:`folio_replay.parsers.tracedat.kernels`).

Page layout (``header_page`` of the file): u64 ``timestamp``, ``commit`` (long; bits 0-26 the
bytes of data, bit 31 "events were lost before this page", bit 30 "and their count is stored
after the data"), then ``data``.  Each record starts with a u32: ``type_len`` (5 bits) and
``time_delta`` (27 bits); kernel/trace/ring_buffer.c (``enum ring_buffer_type``):

* 1..28: data, ``type_len * 4`` bytes follow;  0: data, length in the next u32 (it counts
  itself; kbuffer rounds ``len - 4`` up to 4);
* 29 PADDING: discarded record of ``array[0]`` bytes (time_delta 0: the rest of the page);
* 30 TIME_EXTEND: delta += ``array[0] << 27``;  31 TIME_STAMP: absolute time
  ``array[0] << 27 | time_delta`` whose top 5 bits come from the running time stamp (absolute
  stamps since Linux 5.10, commit dc4e2801d400 "ring-buffer: Redefine the unimplemented
  RINGBUF_TYPE_TIME_STAMP"; the MSB handling is libtraceevent's kbuffer-parse.c).

A record's time is the page time plus the deltas of every record before it on the page.

A page that breaks the format (a commit beyond the page, a record running past the commit, a
missed-events count without room, a time stamp beyond 63 bits) is damaged: its records are
dropped and it is reported as :class:`Damage` (a loss of unknown size); the other pages are
read as usual.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from folio_replay.parsers._native.recycle import BufferPool
from folio_replay.parsers.limits import PAGE_SIZE_MAX
from folio_replay.parsers.tracedat import kernels as tk

from folio_replay.errors import InputError

__all__ = ["DAMAGE", "Damage", "RingRecords", "check_page_header", "decode_pages"]

DAMAGE = {
    tk.BAD_COMMIT: "page commit exceeds the page",
    tk.BAD_RECORD: "corrupt record header",
    tk.PAST_COMMIT: "record runs past the page's commit",
    tk.BAD_MISSED: "missed-events count does not fit in the page",
    tk.BAD_TIME: "time stamp beyond 63 bits",
}


@dataclass(frozen=True)
class Damage:
    """A damaged ring-buffer page, skipped: its index among the CPU's pages, the file offset
    of the fault and what is wrong."""

    page: int
    offset: int
    what: str


@dataclass
class RingRecords:
    """The data records of one CPU's pages, in ring order."""

    ts: np.ndarray  # uint64, clock units of the trace
    payload: np.ndarray  # int64, byte offset of the record's payload in the CPU's pages
    length: np.ndarray  # int64, payload bytes
    lost: np.ndarray  # per page: events lost before it (-1: lost, count unknown)
    first: np.ndarray  # per page: index of its first record
    damaged: list[Damage]  # pages skipped


def check_page_header(path: str, page_size: int, header_page: dict, file_offset: int) -> None:
    """Refuse a page size or ``header_page`` layout whose fields do not lie in the page."""
    ts_off, ts_size = header_page.get("timestamp", (0, 8))
    c_off, c_size = header_page["commit"]
    data_off = header_page["data"][0]
    if not 0 < page_size <= PAGE_SIZE_MAX:
        raise InputError(
            path, f"ring-buffer page size {page_size} out of range", offset=file_offset
        )
    if ts_size != 8 or c_size not in (4, 8):
        raise InputError(path, "unsupported ring-buffer page header", offset=file_offset)
    if ts_off + ts_size > page_size or c_off + c_size > page_size or data_off >= page_size:
        raise InputError(
            path,
            f"ring-buffer page header (timestamp @{ts_off}, commit @{c_off}, data @{data_off}) "
            f"does not fit in {page_size}-byte pages",
            offset=file_offset,
        )


def decode_pages(
    path: str,
    pages: np.ndarray,
    page_size: int,
    header_page: dict,
    file_offset: int,
    memory: BufferPool | None = None,
) -> RingRecords:
    """Walk every page of ``pages`` (uint8, whole pages) and return its data records (in
    arrays from ``memory`` when given) and the damaged pages skipped."""
    check_page_header(path, page_size, header_page, file_offset)
    ts_off = header_page.get("timestamp", (0, 8))[0]
    c_off, c_size = header_page["commit"]
    data_off = header_page["data"][0]
    room = pages.size // 8 + 1  # a record takes at least 8 bytes
    empty = np.empty if memory is None else memory.empty
    ts, payload, length, lost, first, damage, where = tk.walk_pages(
        pages,
        page_size,
        ts_off,
        c_off,
        c_size,
        data_off,
        empty(room, np.uint64),
        empty(room, np.int64),
        empty(room, np.int64),
    )
    damaged = [
        Damage(int(p), file_offset + int(where[p]), DAMAGE[int(damage[p])])
        for p in np.flatnonzero(damage)
    ]
    return RingRecords(ts, payload, length, lost, first, damaged)
