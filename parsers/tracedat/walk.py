"""Compiled loop of the trace.dat decoder (numba): the ring-buffer page walk.  The record
format is described in :mod:`folio_replay.parsers.tracedat.ring`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

PADDING, TIME_EXTEND, TIME_STAMP = 29, 30, 31
COMMIT_MASK = (1 << 27) - 1
MISSED_EVENTS, MISSED_STORED = 1 << 31, 1 << 30
TS_MSB = np.uint64(0xF8 << 56)
# error codes of walk_pages (0 = fine)
BAD_COMMIT, BAD_RECORD, PAST_COMMIT = 1, 2, 3


@njit(cache=True, inline="always")
def u32(b, i):
    """The little-endian u32 at ``b[i]``, read a byte at a time (unaligned 8-byte loads from
    the pages measured 3x slower here)."""
    return (
        np.uint32(b[i])
        | (np.uint32(b[i + 1]) << 8)
        | (np.uint32(b[i + 2]) << 16)
        | (np.uint32(b[i + 3]) << 24)
    )


@njit(cache=True, inline="always")
def u64(b, i):
    """The little-endian u64 at ``b[i]``."""
    return np.uint64(u32(b, i)) | (np.uint64(u32(b, i + 4)) << np.uint64(32))


@njit(cache=True, nogil=True)
def walk_pages(pages, page_size, ts_off, c_off, c_size, data_off, ts_out, off_out, len_out):
    """All data records of one CPU's pages in ring order, written to the first places of
    ``ts_out``, ``off_out`` and ``len_out`` (room for ``pages.size // 8 + 1`` records).

    Returns (ts, payload offset, payload length, lost count per page (-1: unknown count,
    0: none), index of the first record of each page, error code, error byte offset).
    """
    npages = pages.size // page_size
    lost = np.zeros(npages, np.int64)
    first = np.zeros(npages, np.int64)
    n = 0
    for p in range(npages):
        base = p * page_size
        first[p] = n
        t = u64(pages, base + ts_off)
        at = base + c_off
        commit = np.int64(u64(pages, at)) if c_size == 8 else np.int64(u32(pages, at))
        size = commit & COMMIT_MASK
        data = base + data_off
        if size > page_size - data_off:
            return ts_out[:n], off_out[:n], len_out[:n], lost, first, BAD_COMMIT, base
        if commit & MISSED_EVENTS:
            if commit & MISSED_STORED:
                at = data + size
                lost[p] = np.int64(u64(pages, at)) if c_size == 8 else np.int64(u32(pages, at))
            else:
                lost[p] = -1
        cur = 0
        while cur < size:
            pos = data + cur
            hdr = u32(pages, pos)
            type_len = hdr & 31
            delta = np.uint64(hdr >> 5)
            if type_len == PADDING:
                if delta == 0:
                    break
                t += delta
                nxt = cur + 4 + np.int64(u32(pages, pos + 4))
            elif type_len == TIME_EXTEND:
                t += (np.uint64(u32(pages, pos + 4)) << np.uint64(27)) + delta
                nxt = cur + 8
            elif type_len == TIME_STAMP:
                t = ((np.uint64(u32(pages, pos + 4)) << np.uint64(27)) + delta) | (t & TS_MSB)
                nxt = cur + 8
            else:
                t += delta
                if type_len == 0:
                    length = np.int64(u32(pages, pos + 4))
                    if length < 8:
                        return ts_out[:n], off_out[:n], len_out[:n], lost, first, BAD_RECORD, pos
                    length = ((length - 4) + 3) & ~3
                    payload = pos + 8
                    nxt = cur + 8 + length
                else:
                    length = np.int64(type_len) * 4
                    payload = pos + 4
                    nxt = cur + 4 + length
                if nxt > size:
                    return ts_out[:n], off_out[:n], len_out[:n], lost, first, PAST_COMMIT, pos
                ts_out[n] = t
                off_out[n] = payload
                len_out[n] = length
                n += 1
            if nxt <= cur:
                return ts_out[:n], off_out[:n], len_out[:n], lost, first, BAD_RECORD, pos
            cur = nxt
    return ts_out[:n], off_out[:n], len_out[:n], lost, first, 0, 0
