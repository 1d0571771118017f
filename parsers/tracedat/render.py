"""Compiled loops that turn ring-buffer records into event-table columns (numba), driven by
the per-type tables of :mod:`folio_replay.parsers.tracedat.layout`: one pass finds what is new
(event types, pids, string values), one writes every column of every record.

Every record's ``common_type`` (u16 at payload offset 0) selects its slot; ``common_pid`` is
the s32 at offset 4 (``struct trace_entry`` of include/linux/trace_events.h).  String columns
are written as Arrow string buffers straight from a pool of the distinct strings.
"""

from __future__ import annotations

import numpy as np
from folio_replay.parsers._native.byteops import load8, store8
from folio_replay.parsers.tracedat.walk import u32, u64
from numba import njit

EMPTY = -1  # an unused place of the string value table
_MIX = np.uint64(0x9E3779B97F4A7C15)
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


@njit(cache=True, inline="always")
def _u16(data, p):
    return np.int64(data[p]) | (np.int64(data[p + 1]) << 8)


@njit(cache=True, inline="always")
def _read(data, p, size, signed):
    """The ``size``-byte little-endian integer at ``p`` as int64 (sign-extended when signed;
    8 bytes as their bits)."""
    if size == 8:
        return np.int64(u64(data, p))
    if size == 4:
        u = np.uint64(u32(data, p))
    elif size == 2:
        u = np.uint64(data[p]) | (np.uint64(data[p + 1]) << np.uint64(8))
    else:
        u = np.uint64(data[p])
    bits = np.uint64(8 * size)
    if signed and u >> (bits - np.uint64(1)):
        return np.int64(u) - (np.int64(1) << np.int64(bits))
    return np.int64(u)


@njit(cache=True, inline="always")
def _hex8(v):
    """The 8 hex digits of the low 32 bits of ``v``, most significant first, as the bytes of
    a little-endian uint64 (nibbles spread to bytes, then 0-9 / a-f added)."""
    x = np.uint64(v) & np.uint64(0xFFFFFFFF)
    x = ((x & np.uint64(0xFFFF)) << np.uint64(32)) | (x >> np.uint64(16))
    x = ((x & np.uint64(0x000000FF000000FF)) << np.uint64(16)) | (
        (x >> np.uint64(8)) & np.uint64(0x000000FF000000FF)
    )
    x = ((x & np.uint64(0x000F000F000F000F)) << np.uint64(8)) | (
        (x >> np.uint64(4)) & np.uint64(0x000F000F000F000F)
    )
    letters = ((x + np.uint64(0x0606060606060606)) >> np.uint64(4)) & np.uint64(0x0101010101010101)
    return x + np.uint64(0x3030303030303030) + letters * np.uint64(39)


@njit(cache=True, inline="always")
def _copy(src, start, stop, out, at):
    """``src[start:stop]`` written at ``out[at]`` 8 bytes at a time (both padded by 8); the
    position after it."""
    for k in range(0, stop - start, 8):
        store8(out, at + k, load8(src, start + k))
    return at + stop - start


@njit(cache=True, inline="always")
def _place(keys, ops, op, value):
    """Where (op, value) is, or the empty place where it would go, in the open-addressed
    string value table."""
    mask = keys.size - 1
    h = (np.uint64(value) * _MIX) ^ (np.uint64(op) * np.uint64(0xC2B2AE3D27D4EB4F))
    i = np.int64((h >> np.uint64(20)) & np.uint64(mask))
    while ops[i] != EMPTY and not (ops[i] == op and keys[i] == value):
        i = (i + 1) & mask
    return i


@njit(cache=True, nogil=True)
def unknown_types(data, payload, slot_of_type):
    """The distinct event type ids of the records that have no slot yet."""
    seen = np.zeros(slot_of_type.size, np.bool_)
    types = [np.int64(x) for x in range(0)]
    for i in range(payload.size):
        t = _u16(data, payload[i])
        if slot_of_type[t] < 0 and not seen[t]:
            seen[t] = True
            types.append(t)
    return np.array(types, np.int64)


# status of learn()
LEARNT, NEW_TYPE, TABLE_FULL = 0, 1, 2


@njit(cache=True, nogil=True)
def learn(
    data,
    payload,
    slot_of_type,
    text_width,
    pool_of_pid,
    str_start,
    str_ops,
    keys,
    ops,
    codes,
    limit,
    cuts,
    str_rows,
    text_bytes,
):
    """One pass over the records for what the renderer does not know yet.

    Enters every (string op, value) not yet in the table with code -1, and collects the pids
    without a command name (pids at or past the end of ``pool_of_pid`` count as without).
    For each piece ``cuts[k]:cuts[k + 1]`` of the records, counts the rows of each string
    column into ``str_rows[k]`` and the bytes of their ``fields`` text into ``text_bytes[k]``.
    The records are checked already (:mod:`folio_replay.parsers.tracedat.records`): each is
    as long as its format and its pid within pid_max.  Returns (status, places of the new
    values, new pids); stops at the first record of a type without a slot (NEW_TYPE) and when
    the table would hold more than ``limit`` entries (TABLE_FULL): the caller mends and asks
    again.
    """
    used = 0
    for i in range(ops.size):
        if ops[i] != EMPTY:
            used += 1
    places = [np.int64(x) for x in range(0)]
    pids = set()
    pids.add(np.int64(-1))
    pids.discard(np.int64(-1))
    status = LEARNT
    last_pid = -1
    str_rows[:] = 0
    text_bytes[:] = 0
    last = np.zeros(str_ops.shape[0], np.int64)  # each string op's last value
    known = np.zeros(str_ops.shape[0], np.bool_)
    piece = 0
    for i in range(payload.size):
        while i >= cuts[piece + 1]:
            piece += 1
        p = payload[i]
        s = slot_of_type[_u16(data, p)]
        if s < 0:
            status = NEW_TYPE
            break
        pid = _read(data, p + 4, 4, 1)
        if pid != last_pid:
            if pid >= pool_of_pid.size or pool_of_pid[pid] < 0:
                pids.add(pid)
            last_pid = pid
        for o in range(str_start[s], str_start[s + 1]):
            str_rows[piece, str_ops[o, 3]] += 1
            v = _read(data, p + str_ops[o, 0], str_ops[o, 1], str_ops[o, 2])
            if known[o] and v == last[o]:  # values repeat: skip the table
                continue
            known[o] = True
            last[o] = v
            at = _place(keys, ops, o, v)
            if ops[at] == EMPTY:
                if used >= limit:
                    return TABLE_FULL, np.array(places, np.int64), np.zeros(0, np.int64)
                ops[at] = o
                keys[at] = v
                codes[at] = -1
                used += 1
                places.append(at)
        text_bytes[piece] += text_width[s]
    new_pids = np.empty(len(pids), np.int64)
    for k, pid in enumerate(pids):
        new_pids[k] = pid
    return status, np.array(places, np.int64), new_pids


@njit(cache=True, nogil=True)
def rehash(keys, ops, codes, new_size):
    """The string value table moved into one of ``new_size`` places (a power of two)."""
    nk = np.zeros(new_size, np.int64)
    no = np.full(new_size, EMPTY, np.int64)
    nc = np.zeros(new_size, np.int32)
    for i in range(ops.size):
        if ops[i] != EMPTY:
            at = _place(nk, no, ops[i], keys[i])
            nk[at] = keys[i]
            no[at] = ops[i]
            nc[at] = codes[i]
    return nk, no, nc


@njit(cache=True, nogil=True)
def render_records(
    data,
    payload,
    slot_of_type,
    slot_event,
    pool_of_pid,
    pool_offsets,
    pool_bytes,
    int_start,
    int_ops,
    str_start,
    str_ops,
    keys,
    ops,
    codes,
    hex_start,
    hex_fields,
    hex_labels,
    pid,
    ints,
    int_valid,
    str_used,
    str_ends,
    str_base,
    str_bytes,
    str_valid,
    event_ends,
    event_bytes,
    comm_ends,
    comm_bytes,
    text_ends,
    text,
):
    """Write every column of every record: pid, event and comm strings, typed int values and
    strings with their validity bits, and the ``fields`` text.

    ``str_used``: the string columns the layout fills, their ends in the rows of ``str_ends``;
    column c's bytes start at ``str_bytes[str_base[c]]`` (8 bytes of room after each).
    """
    io = int_ops[:, 0].copy()
    isz = int_ops[:, 1].copy()
    isg = int_ops[:, 2].copy()
    iwd = int_ops[:, 3].copy()
    ics = int_ops[:, 4].copy()
    in1 = int_ops[:, 5].copy()
    ibf = int_ops[:, 6].copy()
    icl = int_ops[:, 7].copy()
    so = str_ops[:, 0].copy()
    ssz = str_ops[:, 1].copy()
    ssg = str_ops[:, 2].copy()
    scl = str_ops[:, 3].copy()
    hend = hex_fields[:, 0].copy()
    hoff = hex_fields[:, 1].copy()
    hsz = hex_fields[:, 2].copy()
    hnum = hex_fields[:, 3].copy()
    str_at = np.zeros(str_base.size, np.int64)
    seen_value = np.zeros(str_ops.shape[0], np.int64)  # each string op's last value
    seen_code = np.full(str_ops.shape[0], -1, np.int64)  # and its code (-1: none yet)
    str_ends[:, 0] = 0
    ev_at = 0
    comm_at = 0
    at = 0
    event_ends[0] = 0
    comm_ends[0] = 0
    text_ends[0] = 0
    for i in range(payload.size):
        p = payload[i]
        s = slot_of_type[_u16(data, p)]
        byte = i >> 3
        bit = np.uint8(1 << (i & 7))
        who = _read(data, p + 4, 4, 1)
        pid[i] = who
        code = slot_event[s]
        ev_at = _copy(pool_bytes, pool_offsets[code], pool_offsets[code + 1], event_bytes, ev_at)
        event_ends[i + 1] = ev_at
        code = pool_of_pid[who]
        comm_at = _copy(pool_bytes, pool_offsets[code], pool_offsets[code + 1], comm_bytes, comm_at)
        comm_ends[i + 1] = comm_at
        for o in range(int_start[s], int_start[s + 1]):
            v = _read(data, p + io[o], isz[o], isg[o])
            if in1[o] and v == -1:  # "f != -1UL ? f : 0"
                v = 0
            width = iwd[o]
            if width < 64:  # printf's cast to the conversion's width
                v &= (np.int64(1) << width) - 1
                if ics[o] and v >= (np.int64(1) << (width - 1)):
                    v -= np.int64(1) << width
            ints[ibf[o], i] = v
            int_valid[icl[o], byte] |= bit
        for o in range(str_start[s], str_start[s + 1]):
            v = _read(data, p + so[o], ssz[o], ssg[o])
            c = scl[o]
            if seen_code[o] < 0 or v != seen_value[o]:  # values repeat: skip the table
                seen_value[o] = v
                seen_code[o] = codes[_place(keys, ops, o, v)]
            code = seen_code[o]
            str_at[c] = (
                _copy(
                    pool_bytes,
                    pool_offsets[code],
                    pool_offsets[code + 1],
                    str_bytes,
                    str_base[c] + str_at[c],
                )
                - str_base[c]
            )
            str_valid[c, byte] |= bit
        j0 = hex_start[s]
        label = hend[j0 - 1] if j0 > 0 else 0
        for j in range(j0, hex_start[s + 1]):
            at = _copy(hex_labels, label, hend[j], text, at)
            label = hend[j]
            base = p + hoff[j]
            size = hsz[j]
            if hnum[j] and size <= 8:  # a number: most significant digit first
                v = _read(data, base, size, 0)
                if size == 8:
                    store8(text, at, _hex8(v >> 32))
                    store8(text, at + 8, _hex8(v))
                else:
                    store8(text, at, _hex8(v << (32 - 8 * size)))
                at += 2 * size
            else:
                last = size - 1 if hnum[j] else 0
                for k in range(size):
                    b = data[base + (last - k if last else k)]
                    text[at] = _HEX[b >> 4]
                    text[at + 1] = _HEX[b & 15]
                    at += 2
        text_ends[i + 1] = at
        for u in range(str_used.size):
            str_ends[u, i + 1] = str_at[str_used[u]]


@njit(cache=True, nogil=True)
def gather_records(data, payload, length):
    """The payloads of some records copied into one buffer; their new payload offsets."""
    out_off = np.empty(payload.size, np.int64)
    total = 0
    for i in range(payload.size):
        out_off[i] = total
        total += length[i]
    out = np.zeros(total + 8, np.uint8)
    for i in range(payload.size):
        out[out_off[i] : out_off[i] + length[i]] = data[payload[i] : payload[i] + length[i]]
    return out, out_off
