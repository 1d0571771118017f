"""Compiled loop of the trace.dat decoder (numba): the ring-buffer page walk.  The record
format is described in :mod:`folio_replay.parsers.tracedat.ring`.

Every read stays inside the page: a record header, a time extension, a length word and the
missed-events count are read only where the page's commit (itself at most the page's data
area) says they are.  A page that breaks a rule is *damaged*: its records are dropped, and it
counts as a loss of unknown size, with the rule it broke and where.
"""

from __future__ import annotations

import numpy as np
from numba import njit

PADDING, TIME_EXTEND, TIME_STAMP = 29, 30, 31
COMMIT_MASK = (1 << 27) - 1
MISSED_EVENTS, MISSED_STORED = 1 << 31, 1 << 30
TS_MSB = np.uint64(0xF8 << 56)
# damage codes of walk_pages (0 = sound)
BAD_COMMIT, BAD_RECORD, PAST_COMMIT, BAD_MISSED, BAD_TIME = 1, 2, 3, 4, 5
_TOP = np.uint64(1) << np.uint64(63)


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


@njit(cache=True, inline="always")
def _word(b, i, size):
    """The ``size``-byte (4 or 8) word at ``b[i]``, as uint64."""
    return u64(b, i) if size == 8 else np.uint64(u32(b, i))


@njit(cache=True, nogil=True)
def _walk_page(pages, base, size, data, t, ts_out, off_out, len_out, n):
    """The data records of one page's ``size`` committed bytes at ``data`` (page time ``t``)
    from place ``n`` on.  Returns (records now, damage code, its byte offset)."""
    cur = np.int64(0)
    while cur < size:
        pos = data + cur
        if cur + 4 > size:
            return n, BAD_RECORD, pos
        hdr = u32(pages, pos)
        type_len = hdr & 31
        delta = np.uint64(hdr >> 5)
        word = np.int64(0)
        if type_len >= PADDING or type_len == 0:
            if type_len == PADDING and delta == 0:
                return n, 0, 0  # the rest of the page is padding
            if cur + 8 > size:
                return n, BAD_RECORD, pos
            word = np.int64(u32(pages, pos + 4))
        if type_len == PADDING:
            t += delta
            nxt = cur + 4 + word
        elif type_len == TIME_EXTEND:
            t += (np.uint64(word) << np.uint64(27)) + delta
            nxt = cur + 8
        elif type_len == TIME_STAMP:
            t = ((np.uint64(word) << np.uint64(27)) + delta) | (t & TS_MSB)
            nxt = cur + 8
        else:
            t += delta
            if type_len == 0:
                if word < 8:
                    return n, BAD_RECORD, pos
                length = ((word - 4) + 3) & ~3
                payload = pos + 8
                nxt = cur + 8 + length
            else:
                length = np.int64(type_len * 4)
                payload = pos + 4
                nxt = cur + 4 + length
            if nxt > size:
                return n, PAST_COMMIT, pos
            if t & _TOP:
                return n, BAD_TIME, pos
            ts_out[n] = t
            off_out[n] = payload
            len_out[n] = length
            n += 1
        if nxt > size:
            return n, PAST_COMMIT, pos
        cur = nxt
    return n, 0, 0


@njit(cache=True, nogil=True)
def walk_pages(pages, page_size, ts_off, c_off, c_size, data_off, ts_out, off_out, len_out):
    """All data records of one CPU's sound pages in ring order, written to the first places
    of ``ts_out``, ``off_out`` and ``len_out`` (room for ``pages.size // 8 + 1`` records).

    The page header's fields (``ts_off``, ``c_off``/``c_size``, ``data_off``) must lie in the
    page (the caller checks).  Returns (ts, payload offset, payload length, lost count per
    page (-1: unknown count, 0: none), index of the first record of each page, damage code per
    page (0: sound), byte offset of each damage).
    """
    npages = pages.size // page_size
    lost = np.zeros(npages, np.int64)
    first = np.zeros(npages, np.int64)
    damage = np.zeros(npages, np.int64)
    where = np.zeros(npages, np.int64)
    room = page_size - data_off
    n = 0
    for p in range(npages):
        base = p * page_size
        first[p] = n
        t = u64(pages, base + ts_off)
        commit = _word(pages, base + c_off, c_size)
        size = np.int64(commit & np.uint64(COMMIT_MASK))
        data = base + data_off
        code = 0
        at = base
        if size > room:
            code = BAD_COMMIT
        elif commit & np.uint64(MISSED_EVENTS):
            lost[p] = -1
            if commit & np.uint64(MISSED_STORED):
                if size + c_size > room:
                    code, at = BAD_MISSED, data + size
                else:
                    count = _word(pages, data + size, c_size)
                    if count & _TOP:
                        code, at = BAD_MISSED, data + size
                    else:
                        lost[p] = np.int64(count)
        if code == 0:
            n, code, at = _walk_page(pages, base, size, data, t, ts_out, off_out, len_out, n)
        if code:
            n = first[p]  # a damaged page gives no record
            lost[p] = -1
            damage[p] = code
            where[p] = at
    return ts_out[:n], off_out[:n], len_out[:n], lost, first, damage, where
