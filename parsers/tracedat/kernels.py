"""The compiled loops of the trace.dat decoder (``kernels.c``, built when the package is
installed) behind Python functions that check what they are given.

The loops are plain C called through :mod:`ctypes`: nothing is compiled at run time and no
JIT is loaded (the numba kernels they replace cost 0.7 s of imports and cache loading per
process, most of `folio-replay parse` of a million-event file), and a call releases the GIL,
so the render threads run side by side. Every array is checked before its address is
passed: inputs are made C-ordered of the loop's type (a copy where they are not), outputs
must be so already (a wrong one is a bug, raised as ``TypeError``).
"""

from __future__ import annotations

import ctypes
from importlib.util import find_spec

import numpy as np

__all__ = [
    "BAD_COMMIT",
    "BAD_MISSED",
    "BAD_PID",
    "BAD_RECORD",
    "BAD_TIME",
    "EMPTY",
    "LEARNT",
    "NEW_TYPE",
    "NEW_TYPE_CHECK",
    "PAST_COMMIT",
    "SHORT",
    "SHORTER_THAN_FORMAT",
    "TABLE_FULL",
    "TYPE_IDS",
    "check_records",
    "common_types",
    "gather_records",
    "learn",
    "rehash",
    "render_records",
    "unknown_types",
    "walk_pages",
]

# damage codes of walk_pages (0 = sound)
BAD_COMMIT, BAD_RECORD, PAST_COMMIT, BAD_MISSED, BAD_TIME = 1, 2, 3, 4, 5
# what check_records found (0: all good)
SHORT, BAD_PID, NEW_TYPE_CHECK, SHORTER_THAN_FORMAT = 1, 2, 3, 4
EMPTY = -1  # an unused place of the string value table
# status of learn()
LEARNT, NEW_TYPE, TABLE_FULL, _NO_MEMORY = 0, 1, 2, 3
TYPE_IDS = 1 << 16  # common_type is a u16

_EXTENSION = "folio_replay.parsers.tracedat._kernels"


def common_types(data: np.ndarray, payload: np.ndarray) -> np.ndarray:
    """Each record's ``common_type``: the little-endian u16 at payload offset 0 (``struct
    trace_entry``), as the compiled loops read it (``type_of`` in kernels.c)."""
    return data[payload].astype(np.int64) | (data[payload + 1].astype(np.int64) << 8)


def _library() -> ctypes.CDLL:
    spec = find_spec(_EXTENSION)
    if spec is None or spec.origin is None:
        raise ImportError(
            f"{_EXTENSION} is not built: install the package (pip install -e .), which "
            "compiles parsers/tracedat/kernels.c"
        )
    lib = ctypes.CDLL(spec.origin)
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    arguments = {
        "fr_walk_pages": [ptr, i64, i64, i64, i64, i64, i64, *[ptr] * 7],
        "fr_check_records": [ptr, ptr, ptr, i64, i64, ptr, i64, ptr],
        "fr_unknown_types": [ptr, ptr, i64, ptr, ptr],
        "fr_learn": [
            ptr, ptr, i64, *[ptr] * 3, i64, ptr, ptr, i64, *[ptr] * 3, i64, i64, ptr, i64,
            ptr, i64, *[ptr] * 5,
        ],
        "fr_rehash": [ptr, ptr, ptr, i64, ptr, ptr, ptr, i64],
        "fr_render_records": [
            ptr, ptr, i64, *[ptr] * 9, i64, *[ptr] * 3, i64, *[ptr] * 6, i64, ptr, i64,
            ptr, ptr, i64, *[ptr] * 7, i64, ptr,
        ],
        "fr_gather_records": [ptr, ptr, ptr, i64, ptr, ptr],
    }  # fmt: skip
    for name, types in arguments.items():
        function = getattr(lib, name)
        function.argtypes = types
        function.restype = None if name in ("fr_rehash", "fr_gather_records") else i64
    return lib


_LIB = _library()


def _in(array: np.ndarray, dtype: type) -> np.ndarray:
    """``array`` C-ordered as ``dtype`` (itself when it is)."""
    return np.ascontiguousarray(array, dtype=dtype)


def _out(array: np.ndarray, dtype: type, size: int) -> np.ndarray:
    """``array``, checked to be a C-ordered ``dtype`` array of at least ``size`` items."""
    if array.dtype != dtype or not array.flags.c_contiguous or not array.flags.writeable:
        raise TypeError(f"an output of the trace.dat loops must be a writeable C-ordered {dtype}")
    if array.size < size:
        raise TypeError(f"an output of the trace.dat loops has {array.size} places, needs {size}")
    return array


def _at(array: np.ndarray) -> int:
    return array.ctypes.data


def _records(data: np.ndarray, payload: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _in(data, np.uint8), _in(payload, np.int64)


def walk_pages(
    pages: np.ndarray,
    page_size: int,
    ts_off: int,
    c_off: int,
    c_size: int,
    data_off: int,
    ts_out: np.ndarray,
    off_out: np.ndarray,
    len_out: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """All data records of one CPU's sound pages in ring order, written to the first places
    of ``ts_out``, ``off_out`` and ``len_out`` (room for ``pages.size // 8 + 1`` records).

    The page header's fields (``ts_off``, ``c_off``/``c_size``, ``data_off``) must lie in the
    page (the caller checks). Every read stays inside the page: a record header, a time
    extension, a length word and the missed-events count are read only where the page's
    commit (itself at most the page's data area) says they are. A page that breaks a rule is
    *damaged*: its records are dropped, and it counts as a loss of unknown size. Returns (ts,
    payload offset, payload length, lost count per page (-1: unknown count, 0: none), index of
    the first record of each page, damage code per page (0: sound), byte offset of each
    damage).
    """
    pages = _in(pages, np.uint8)
    room = pages.size // 8 + 1
    ts_out, off_out = _out(ts_out, np.uint64, room), _out(off_out, np.int64, room)
    len_out = _out(len_out, np.int64, room)
    npages = pages.size // page_size
    lost, first, damage, where = (np.empty(npages, np.int64) for _ in range(4))  # all written
    n = _LIB.fr_walk_pages(
        _at(pages), pages.size, page_size, ts_off, c_off, c_size, data_off,
        *map(_at, (ts_out, off_out, len_out, lost, first, damage, where)),
    )  # fmt: skip
    return ts_out[:n], off_out[:n], len_out[:n], lost, first, damage, where


def check_records(
    data: np.ndarray,
    payload: np.ndarray,
    length: np.ndarray,
    start: int,
    min_length: np.ndarray,
    pid_max: int,
) -> tuple[int, int]:
    """(what, record index) of the first record from ``start`` on that is shorter than the
    common fields, has a pid outside 0..``pid_max``, a type whose ``min_length`` is unknown
    (-1), or is shorter than its type's ``min_length``; (0, n) when none is."""
    data, payload = _records(data, payload)
    length, min_length = _in(length, np.int64), _in(min_length, np.int64)
    if min_length.size < TYPE_IDS or length.size < payload.size:
        raise TypeError("check_records needs a length per record and a min_length per type id")
    index = ctypes.c_int64(0)
    what = _LIB.fr_check_records(
        _at(data), _at(payload), _at(length), payload.size, start, _at(min_length), pid_max,
        ctypes.byref(index),
    )  # fmt: skip
    return what, index.value


def _slots(slot_of_type: np.ndarray) -> np.ndarray:
    slots = _in(slot_of_type, np.int32)
    if slots.size < TYPE_IDS:
        raise TypeError("slot_of_type needs a slot per type id")
    return slots


def unknown_types(data: np.ndarray, payload: np.ndarray, slot_of_type: np.ndarray) -> np.ndarray:
    """The distinct event type ids of the records that have no slot yet."""
    data, payload = _records(data, payload)
    slots = _slots(slot_of_type)
    out = np.empty(TYPE_IDS, np.int64)
    count = _LIB.fr_unknown_types(_at(data), _at(payload), payload.size, _at(slots), _at(out))
    if count < 0:
        raise MemoryError("trace.dat: no memory for the event type scan")
    return out[:count].copy()


def _table(keys: np.ndarray, ops: np.ndarray, codes: np.ndarray) -> int:
    """The size of a string value table (keys, ops, codes: int64 of one power-of-two size)."""
    size = keys.size
    for array in (keys, ops, codes):
        _out(array, np.int64, size)
    if ops.size != size or codes.size != size or size & (size - 1):
        raise TypeError("the string value table's arrays must be of one power-of-two size")
    return size


def learn(
    data: np.ndarray,
    payload: np.ndarray,
    slot_of_type: np.ndarray,
    text_width: np.ndarray,
    pool_of_pid: np.ndarray,
    str_start: np.ndarray,
    str_ops: np.ndarray,
    keys: np.ndarray,
    ops: np.ndarray,
    codes: np.ndarray,
    limit: int,
    cuts: np.ndarray,
    str_rows: np.ndarray,
    text_bytes: np.ndarray,
) -> tuple[int, np.ndarray, np.ndarray]:
    """One pass over the records for what the renderer does not know yet.

    Enters every (string op, value) not yet in the table with code -1, and collects the pids
    without a command name (pids at or past the end of ``pool_of_pid`` count as without).
    For each piece ``cuts[k]:cuts[k + 1]`` of the records, counts the rows of each string
    column into ``str_rows[k]`` and the bytes of their ``fields`` text into ``text_bytes[k]``.
    The records are checked already (:mod:`folio_replay.parsers.tracedat.records`): each is
    as long as its format and its pid within pid_max. Returns (status, places of the new
    values, new pids); stops at the first record of a type without a slot (NEW_TYPE) and when
    the table would hold more than ``limit`` entries (TABLE_FULL, no pids): the caller mends
    and asks again.
    """
    data, payload = _records(data, payload)
    slots = _slots(slot_of_type)
    text_width, pool_of_pid = _in(text_width, np.int64), _in(pool_of_pid, np.int64)
    str_start, str_ops, cuts = _in(str_start, np.int64), _in(str_ops, np.int64), _in(cuts, np.int64)
    size = _table(keys, ops, codes)
    pieces = cuts.size - 1
    if cuts[-1] != payload.size or str_ops.shape[1:] != (4,):
        raise TypeError("learn needs cuts ending at the last record and four ints per string op")
    columns = str_rows.shape[1]
    _out(str_rows, np.int64, pieces * columns)
    _out(text_bytes, np.int64, pieces)
    places = np.empty(max(limit, 1), np.int64)
    pids = np.empty(max(payload.size, 1), np.int64)
    nplaces, npids = ctypes.c_int64(0), ctypes.c_int64(0)
    status = _LIB.fr_learn(
        _at(data), _at(payload), payload.size, _at(slots), _at(text_width), _at(pool_of_pid),
        pool_of_pid.size, _at(str_start), _at(str_ops), str_ops.shape[0], _at(keys), _at(ops),
        _at(codes), size, limit, _at(cuts), pieces, _at(str_rows), columns, _at(text_bytes),
        _at(places), ctypes.byref(nplaces), _at(pids), ctypes.byref(npids),
    )  # fmt: skip
    if status == _NO_MEMORY:
        raise MemoryError("trace.dat: no memory for the string value scan")
    return status, places[: nplaces.value].copy(), np.unique(pids[: npids.value])


def rehash(
    keys: np.ndarray, ops: np.ndarray, codes: np.ndarray, new_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The string value table moved into one of ``new_size`` places (a power of two)."""
    size = _table(keys, ops, codes)
    nk, nc = np.zeros(new_size, np.int64), np.zeros(new_size, np.int64)
    no = np.full(new_size, EMPTY, np.int64)
    _table(nk, no, nc)
    _LIB.fr_rehash(_at(keys), _at(ops), _at(codes), size, _at(nk), _at(no), _at(nc), new_size)
    return nk, no, nc


def render_records(
    data: np.ndarray,
    payload: np.ndarray,
    slot_of_type: np.ndarray,
    slot_event: np.ndarray,
    pool_of_pid: np.ndarray,
    pool_offsets: np.ndarray,
    pool_bytes: np.ndarray,
    int_start: np.ndarray,
    int_ops: np.ndarray,
    str_start: np.ndarray,
    str_ops: np.ndarray,
    keys: np.ndarray,
    ops: np.ndarray,
    codes: np.ndarray,
    hex_start: np.ndarray,
    hex_fields: np.ndarray,
    hex_labels: np.ndarray,
    pid: np.ndarray,
    ints: np.ndarray,
    int_valid: np.ndarray,
    str_used: np.ndarray,
    str_ends: np.ndarray,
    str_base: np.ndarray,
    str_bytes: np.ndarray,
    str_valid: np.ndarray,
    event_ends: np.ndarray,
    event_bytes: np.ndarray,
    comm_ends: np.ndarray,
    comm_bytes: np.ndarray,
    text_ends: np.ndarray,
    text: np.ndarray,
) -> None:
    """Write every column of every record: pid, event and comm strings, typed int values and
    strings with their validity bits, and the ``fields`` text.

    Every record's ``common_type`` (u16 at payload offset 0) selects its slot; ``common_pid``
    is the s32 at offset 4 (``struct trace_entry`` of include/linux/trace_events.h). String
    columns are written as Arrow string buffers straight from a pool of the distinct strings.
    ``str_used``: the string columns the layout fills, their ends in the rows of
    ``str_ends``; column c's bytes start at ``str_bytes[str_base[c]]``. The byte buffers must
    have room for what :meth:`.table.TableRenderer` sized them for (the loop does not check).
    """
    data, payload = _records(data, payload)
    n = payload.size
    nbytes = (n + 7) // 8
    slots = _slots(slot_of_type)
    slot_event, pool_of_pid = _in(slot_event, np.int64), _in(pool_of_pid, np.int64)
    pool_offsets, pool_bytes = _in(pool_offsets, np.int64), _in(pool_bytes, np.uint8)
    int_start, int_ops = _in(int_start, np.int64), _in(int_ops, np.int64)
    str_start, str_ops = _in(str_start, np.int64), _in(str_ops, np.int64)
    hex_start, hex_fields = _in(hex_start, np.int64), _in(hex_fields, np.int64)
    hex_labels, str_used = _in(hex_labels, np.uint8), _in(str_used, np.int64)
    str_base = _in(str_base, np.int64)
    if int_ops.shape[1:] != (8,) or str_ops.shape[1:] != (4,) or hex_fields.shape[1:] != (4,):
        raise TypeError("render_records needs 8 ints per int op and 4 per string op and field")
    size = _table(keys, ops, codes)
    _out(pid, np.int32, n)
    _out(ints, np.int64, ints.shape[0] * n)
    if (
        ints.shape[1:] != (n,)
        or int_valid.shape[1:] != (nbytes,)
        or str_valid.shape[1:] != (nbytes,)
    ):
        raise TypeError("render_records needs a row of n values and of n bits per column")
    _out(int_valid, np.uint8, int_valid.size)
    _out(str_valid, np.uint8, str_valid.size)
    if str_ends.shape != (str_used.size, n + 1) or str_base.size != str_valid.shape[0]:
        raise TypeError("render_records needs n + 1 ends per used string column")
    _out(str_ends, np.int32, str_ends.size)
    _out(str_bytes, np.uint8, 0)
    for ends in (event_ends, comm_ends):
        _out(ends, np.int32, n + 1)
    wide = text_ends.dtype == np.int64
    _out(text_ends, np.int64 if wide else np.int32, n + 1)
    for buffer in (event_bytes, comm_bytes, text):
        _out(buffer, np.uint8, 0)
    status = _LIB.fr_render_records(
        _at(data), _at(payload), n, _at(slots), _at(slot_event), _at(pool_of_pid),
        _at(pool_offsets), _at(pool_bytes), _at(int_start), _at(int_ops), _at(str_start),
        _at(str_ops), str_ops.shape[0], _at(keys), _at(ops), _at(codes), size,
        _at(hex_start), _at(hex_fields), _at(hex_labels), _at(pid), _at(ints),
        _at(int_valid), nbytes, _at(str_used), str_used.size, _at(str_ends), _at(str_base),
        str_base.size, _at(str_bytes), _at(str_valid), _at(event_ends), _at(event_bytes),
        _at(comm_ends), _at(comm_bytes), _at(text_ends), int(wide), _at(text),
    )  # fmt: skip
    if status < 0:
        raise MemoryError("trace.dat: no memory to render the records")


def gather_records(
    data: np.ndarray, payload: np.ndarray, length: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The payloads of some records copied into one buffer; their new payload offsets."""
    data, payload = _records(data, payload)
    length = _in(length, np.int64)
    out_off = np.zeros(payload.size, np.int64)
    np.cumsum(length[:-1], out=out_off[1:])
    total = int(out_off[-1] + length[-1]) if payload.size else 0
    out = np.zeros(total + 8, np.uint8)
    _LIB.fr_gather_records(
        _at(data), _at(payload), _at(length), payload.size, _at(out_off), _at(out)
    )
    return out, out_off
