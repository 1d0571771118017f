"""Decode ftrace ring-buffer pages with numpy, all pages of a CPU in lockstep.

Page layout (``header_page`` of the file): u64 ``timestamp``, ``commit`` (long; bits 0-26 the
bytes of data, bit 31 "events were lost before this page", bit 30 "and their count is stored
after the data"), then ``data``.  Each record starts with a u32: ``type_len`` (5 bits) and
``time_delta`` (27 bits); kernel/trace/ring_buffer.c (``enum ring_buffer_type``):

* 1..28: data, ``type_len * 4`` bytes follow;  0: data, length in the next u32 (it counts
  itself; kbuffer rounds ``len - 4`` up to 4);
* 29 PADDING: discarded record of ``array[0]`` bytes (time_delta 0: the rest of the page);
* 30 TIME_EXTEND: delta += ``array[0] << 27``;  31 TIME_STAMP: absolute time
  ``array[0] << 27 | time_delta`` whose top 5 bits come from the running time stamp (absolute
  stamps exist since Linux 5.x, commit dc4e2801d400 "ring-buffer: Redefine the unimplemented
  RINGBUF_TYPE_TIME_STAMP"; MSB handling as in libtraceevent's kbuffer-parse.c).

A record's time is the page time plus the deltas of every record before it on the page, so a
page is walked sequentially; the walk runs over all pages at once (one numpy step per record
position), which keeps the per-record cost at a few array operations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from folio_replay.errors import InputError

PADDING, TIME_EXTEND, TIME_STAMP = 29, 30, 31
COMMIT_MASK = (1 << 27) - 1
MISSED_EVENTS, MISSED_STORED = 1 << 31, 1 << 30
TS_SHIFT = 27
TS_MSB = np.uint64(0xF8 << 56)


@dataclass
class RingRecords:
    """The data records of one CPU's pages, in ring order."""

    ts: np.ndarray        # uint64, clock units of the trace
    payload: np.ndarray   # int64, byte offset of the record's payload in the CPU's page array
    length: np.ndarray    # int64, payload bytes
    lost: int             # events the kernel reported lost (-1 pages count as 1 unknown loss)
    lost_pages: int       # pages that carry a lost-events flag


def decode_pages(path: str, pages: np.ndarray, page_size: int, header_page: dict,
                 file_offset: int) -> RingRecords:
    """Walk every page of ``pages`` (uint8, whole pages) and return its data records."""
    npages = pages.size // page_size
    if npages == 0:
        empty = np.zeros(0, dtype=np.int64)
        return RingRecords(empty.astype(np.uint64), empty, empty, 0, 0)
    ts_off, ts_size = header_page.get("timestamp", (0, 8))
    c_off, c_size = header_page["commit"]
    data_off = header_page["data"][0]
    if ts_size != 8 or c_size not in (4, 8) or data_off % 4 or page_size % 4:
        raise InputError(path, "unsupported ring-buffer page header", offset=file_offset)
    rows = pages.reshape(npages, page_size)
    page_ts = np.ascontiguousarray(rows[:, ts_off:ts_off + 8]).view("<u8").ravel()
    commit = np.ascontiguousarray(rows[:, c_off:c_off + c_size]).view(f"<u{c_size}").ravel()
    commit = commit.astype(np.int64)
    size = commit & COMMIT_MASK
    if (size > page_size - data_off).any():
        bad = int(np.flatnonzero(size > page_size - data_off)[0])
        raise InputError(path, f"ring-buffer page {bad}: commit {int(size[bad])} exceeds the page",
                         offset=file_offset + bad * page_size)
    lost, lost_pages = _lost_events(rows, commit, size, data_off, c_size)

    words = pages.view("<u4")
    last_word = words.size - 1
    page_base = np.arange(npages, dtype=np.int64) * page_size + data_off
    cur = np.zeros(npages, dtype=np.int64)   # byte position inside each page's data
    ts = page_ts.copy()
    idx = np.flatnonzero(size > 0)
    out_page, out_step, out_ts, out_payload, out_len = [], [], [], [], []
    step = 0
    while idx.size:
        pos = page_base[idx] + cur[idx]
        hdr = words[pos >> 2].astype(np.int64)
        arr0 = words[np.minimum((pos >> 2) + 1, last_word)].astype(np.int64)
        type_len = hdr & 31
        delta = (hdr >> 5).astype(np.uint64)
        nxt = cur[idx] + 4 + type_len * 4                    # data records 1..28
        is_big = type_len == 0
        big_len = ((arr0 - 4) + 3) & ~3
        nxt = np.where(is_big, cur[idx] + 8 + big_len, nxt)
        is_pad = type_len == PADDING
        nxt = np.where(is_pad, np.where(delta == 0, size[idx], cur[idx] + 4 + arr0), nxt)
        is_ext = type_len == TIME_EXTEND
        is_abs = type_len == TIME_STAMP
        nxt = np.where(is_ext | is_abs, cur[idx] + 8, nxt)
        extend = (arr0.astype(np.uint64) << np.uint64(TS_SHIFT)) + delta
        t = ts[idx]
        t = np.where(is_ext, t + extend, np.where(is_abs, extend | (t & TS_MSB), t + delta))
        ts[idx] = t
        if (is_big & (arr0 < 8)).any() or (nxt <= cur[idx]).any():
            bad = int(idx[np.flatnonzero((is_big & (arr0 < 8)) | (nxt <= cur[idx]))[0]])
            raise InputError(path, f"ring-buffer page {bad}: corrupt record header",
                             offset=file_offset + bad * page_size + data_off + int(cur[bad]))
        is_data = type_len <= 28
        if is_data.any():
            sel = idx[is_data]
            out_page.append(sel)
            out_step.append(np.full(sel.size, step, dtype=np.int32))
            out_ts.append(t[is_data])
            out_payload.append(pos[is_data] + np.where(is_big[is_data], 8, 4))
            out_len.append(np.where(is_big[is_data], big_len[is_data], type_len[is_data] * 4))
        if (is_data & (nxt > size[idx])).any():
            bad = int(idx[np.flatnonzero(is_data & (nxt > size[idx]))[0]])
            raise InputError(path, f"ring-buffer page {bad}: record runs past the page's commit",
                             offset=file_offset + bad * page_size + data_off + int(cur[bad]))
        cur[idx] = nxt
        idx = idx[nxt < size[idx]]
        step += 1
    if not out_page:
        empty = np.zeros(0, dtype=np.int64)
        return RingRecords(empty.astype(np.uint64), empty, empty, lost, lost_pages)
    page = np.concatenate(out_page)
    order = np.lexsort((np.concatenate(out_step), page))   # page, then position in the page
    return RingRecords(np.concatenate(out_ts)[order], np.concatenate(out_payload)[order],
                       np.concatenate(out_len)[order], lost, lost_pages)


def _lost_events(rows: np.ndarray, commit: np.ndarray, size: np.ndarray, data_off: int,
                 long_size: int) -> tuple[int, int]:
    """Count the events the pages say were lost (kbuffer_load_subbuffer's reading)."""
    flagged = np.flatnonzero(commit & MISSED_EVENTS)
    total = 0
    for p in flagged:
        if commit[p] & MISSED_STORED:
            at = data_off + int(size[p])
            total += int(np.ascontiguousarray(rows[p, at:at + long_size]).view(f"<u{long_size}")[0])
        else:
            total += 1
    return total, int(flagged.size)
