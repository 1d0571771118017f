"""trace.dat -> the event table: records rendered by compiled loops
(:mod:`folio_replay.parsers.tracedat.kernels`) following the per-type tables of
:mod:`folio_replay.parsers.tracedat.layout`.

The typed columns are computed from the binary fields the way the text shows them: each
schema key (``parsers/events.toml``) is found in the event's ``print fmt`` and read
through its argument (:mod:`folio_replay.parsers.tracedat.printfmt`): numbers cast as printf casts
them, ``__print_symbolic``/``__print_flags`` names and per-bit letters from the format file
(:mod:`folio_replay.parsers.tracedat.values`, once per distinct value).

What differs from the parse of ``trace-cmd report -t`` text of the same file (checked event by
event in tests/test_tracedat.py; every other column is equal):

* ``fields`` holds the record's own binary fields, lossless, as ``name=0x<hex>`` (big-endian
  hex of the field's bytes; arrays in byte order; ``__data_loc`` fields as their 4-byte
  location word, their dynamic data is not copied), not the print-fmt text (trace-cmd's
  plugins also change that text, e.g. ``pages=`` for the kernel's ``pages:``);
* a lost-events marker's ``line`` is the ordinal of the first record after the loss (in the
  report it is the marker's own line of text); see :mod:`folio_replay.parsers.tracedat.read`;
* a negative ``tlb_flush`` reason (no kernel writes one) is the kernel's ``(%d)``; trace-cmd's
  tlb plugin prints the field unsigned.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import pyarrow as pa
from folio_replay.parsers import schema
from folio_replay.parsers._native.arrays import plain_array
from folio_replay.parsers._native.recycle import BufferPool
from folio_replay.parsers.text.nulls import null_column
from folio_replay.parsers.tracedat import kernels as tr
from folio_replay.parsers.tracedat.container import DatFile
from folio_replay.parsers.tracedat.layout import Layout
from folio_replay.parsers.tracedat.values import shown_value

from folio_replay.errors import InputError

_FIRST_TABLE = 1 << 12  # places of the string value table at first
# Pieces of a batch rendered at once, each by a thread (the compiled loop releases the GIL);
# a piece has at least MIN_PART_ROWS records.
RENDER_THREADS = len(os.sched_getaffinity(0))
MIN_PART_ROWS = 1 << 14
PAD = 8  # bytes of slack after every buffer the compiled loops write


class StringPool:
    """The distinct strings of a file's string columns (event and command names, typed
    values), with their codes, as one Arrow-ready buffer."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self._buffers: tuple[np.ndarray, np.ndarray] | None = None

    def code(self, text: str) -> int:
        if text not in self.codes:
            self.codes[text] = len(self.codes)
            self._buffers = None
        return self.codes[text]

    def buffers(self) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, bytes) of the strings in code order."""
        if self._buffers is None:
            raw = [t.encode() for t in self.codes]
            offsets = np.zeros(len(raw) + 1, np.int64)
            np.cumsum([len(r) for r in raw], out=offsets[1:])
            self._buffers = offsets, np.frombuffer(b"".join(raw) + bytes(PAD), np.uint8)
        return self._buffers


class _Frame(NamedTuple):
    """What a piece renders with: the renderer's tables as they were when it was handed out."""

    slot_of_type: np.ndarray
    slot_event: np.ndarray
    pool_of_pid: np.ndarray
    pool: tuple[np.ndarray, np.ndarray]
    int_start: np.ndarray
    int_ops: np.ndarray
    str_start: np.ndarray
    str_ops: np.ndarray
    values: tuple[np.ndarray, np.ndarray, np.ndarray]
    hex_start: np.ndarray
    hex_fields: np.ndarray
    hex_labels: np.ndarray
    int_buffers: int
    buffer_of: dict[int, int]
    longest: np.ndarray
    longest_event: int
    longest_comm: int


class Renderer:
    """Builds event tables from one trace.dat's records; keeps what it learnt of the file
    (event types, distinct values, command names) from one batch to the next."""

    def __init__(self, path: str, dat: DatFile) -> None:
        self.path = path
        self.dat = dat
        self.layout = Layout()
        self.pool = StringPool()
        self.slot_event = np.zeros(0, np.int64)
        self.slot_rows = np.zeros(0, np.int64)  # rows rendered of each slot
        self.pool_of_pid = np.full(1, -1, np.int64)
        # the string value table: (keys, ops, codes), replaced as one when it grows
        self.values = (
            np.zeros(_FIRST_TABLE, np.int64),
            np.full(_FIRST_TABLE, tr.EMPTY, np.int64),
            np.zeros(_FIRST_TABLE, np.int64),
        )
        self.memory = BufferPool()
        self.longest = np.zeros(len(self.layout.str_columns), np.int64)  # bytes, per column
        self.longest_event = 0
        self.longest_comm = 0

    def tables(
        self,
        data: np.ndarray,
        ts: np.ndarray,
        cpu: np.ndarray,
        payload: np.ndarray,
        first_line: int,
    ) -> list[Future]:
        """The event table of the records whose payloads start at ``payload`` in ``data``, in
        row order as pieces: futures of tables being rendered by :data:`RENDER_THREADS`
        threads (done already with one thread).

        What the records hold that is new is learnt first, here; the renderer may learn from
        the next records while these pieces render: a piece renders with the tables as they
        were when it was handed out (:class:`_Frame`), which only ever grow.
        """
        n = ts.size
        parts = max(1, min(RENDER_THREADS, n // MIN_PART_ROWS))
        cuts = np.array([n * k // parts for k in range(parts + 1)], np.int64)
        sizes = self._learn(data, payload, cuts)
        self._count(data, payload)
        frame = self._frame()
        pieces = [
            (frame, data, ts[a:b], cpu[a:b], payload[a:b], first_line + a, *size)
            for a, b, size in zip(cuts, cuts[1:], zip(*sizes))
        ]
        if RENDER_THREADS == 1:
            done: Future = Future()
            done.set_result(self._table(*pieces[0]))
            return [done]
        return [_executor().submit(self._table, *piece) for piece in pieces]

    def _count(self, data: np.ndarray, payload: np.ndarray) -> None:
        """Count the records of each event type."""
        slots = self.layout.slot_of_type[tr.common_types(data, payload)]
        rows = np.bincount(slots, minlength=len(self.layout.event_names))
        rows[: self.slot_rows.size] += self.slot_rows
        self.slot_rows = rows

    def event_counts(self) -> dict[str, int]:
        """Rows rendered so far per event name (every type that occurred)."""
        return {
            name: int(n) for name, n in zip(self.layout.event_names, self.slot_rows.tolist()) if n
        }

    def _frame(self) -> _Frame:
        lay = self.layout
        return _Frame(
            lay.slot_of_type.copy(),
            self.slot_event,
            self.pool_of_pid.copy(),
            self.pool.buffers(),
            lay.int_start,
            lay.int_ops,
            lay.str_start,
            lay.str_ops,
            self.values,
            lay.hex_start,
            lay.hex_fields,
            lay.hex_labels,
            lay.int_buffers,
            dict(lay.buffer_of),
            self.longest.copy(),
            self.longest_event,
            self.longest_comm,
        )

    def _table(
        self,
        f: _Frame,
        data: np.ndarray,
        ts: np.ndarray,
        cpu: np.ndarray,
        payload: np.ndarray,
        first_line: int,
        str_rows: np.ndarray,
        text_bytes: int,
    ) -> pa.Table:
        """One piece of the event table (what it needs learnt already, in ``f``):
        ``str_rows`` rows of each string column, ``text_bytes`` of ``fields`` text."""
        lay = self.layout
        n = ts.size
        nbytes = (n + 7) // 8
        mem = self.memory
        pid = mem.empty(n, np.int32)
        ints = mem.empty((f.int_buffers, n), np.int64)
        int_valid = mem.zeros((len(lay.int_columns), nbytes), np.uint8)
        str_used = np.unique(f.str_ops[:, 3])
        str_ends = mem.empty((str_used.size, n + 1), np.int32)
        room = np.zeros(len(lay.str_columns), np.int64)  # bytes each column may take
        room[str_used] = [str_rows[c] * f.longest[c] + PAD for c in str_used]
        str_base = np.concatenate([[0], np.cumsum(room)[:-1]])
        str_bytes = mem.empty(int(room.sum()), np.uint8)
        str_valid = mem.zeros((len(lay.str_columns), nbytes), np.uint8)
        event_ends = mem.empty(n + 1, np.int32)
        event_bytes = mem.empty(n * f.longest_event + PAD, np.uint8)
        comm_ends = mem.empty(n + 1, np.int32)
        comm_bytes = mem.empty(n * f.longest_comm + PAD, np.uint8)
        text = mem.empty(int(text_bytes) + PAD, np.uint8)
        text_ends = mem.empty(n + 1, np.int32 if text.size < 2**31 else np.int64)
        tr.render_records(
            data,
            payload,
            f.slot_of_type,
            f.slot_event,
            f.pool_of_pid,
            *f.pool,
            f.int_start,
            f.int_ops,
            f.str_start,
            f.str_ops,
            *f.values,
            f.hex_start,
            f.hex_fields,
            f.hex_labels,
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
        )
        cols = {
            "ts_ns": plain_array(ts, pa.int64()),
            "cpu": plain_array(cpu, pa.int32()),
            "pid": plain_array(pid, pa.int32()),
            "comm": _strings(n, comm_ends, comm_bytes),
            "event": _strings(n, event_ends, event_bytes),
            "line": plain_array(_lines(mem.empty(n, np.int64), first_line), pa.int64()),
            "fields": _strings(n, text_ends, text),
        }
        int_count = np.bitwise_count(int_valid).sum(axis=1)
        str_count = np.bitwise_count(str_valid).sum(axis=1)
        for c, col in enumerate(lay.int_columns):
            cols[col] = (
                null_column(n, pa.int64())
                if int_count[c] == 0
                else _valid_where(
                    pa.int64(), n, int_valid[c], int(int_count[c]), ints[f.buffer_of[c]]
                )
            )
        row_of = {int(c): u for u, c in enumerate(str_used)}
        for c, col in enumerate(lay.str_columns):
            if str_count[c] == 0:
                cols[col] = null_column(n, pa.string())
                continue
            ends = str_ends[row_of[c]]
            base = int(str_base[c])
            cols[col] = _valid_where(
                pa.string(),
                n,
                str_valid[c],
                int(str_count[c]),
                ends,
                str_bytes[base : base + int(ends[-1])],
            )
        out_schema = schema.event_table_schema()
        return pa.table([cols[f.name] for f in out_schema], schema=out_schema)

    def _learn(
        self, data: np.ndarray, payload: np.ndarray, cuts: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Learn what the records hold that is new: event types (a slot each), pids (their
        command name), string values (their text as the column shows it, in the pool).
        Returns the rows of each string column and the ``fields`` bytes of each piece."""
        lay = self.layout
        str_rows = np.zeros((cuts.size - 1, len(lay.str_columns)), np.int64)
        text_bytes = np.zeros(cuts.size - 1, np.int64)
        while True:
            status, places, pids = tr.learn(
                data,
                payload,
                lay.slot_of_type,
                lay.text_width,
                self.pool_of_pid,
                lay.str_start,
                lay.str_ops,
                *self.values,
                self.values[0].size // 2,
                cuts,
                str_rows,
                text_bytes,
            )
            self._name_values(places)
            self._name_pids(pids)
            if status == tr.NEW_TYPE:
                self._add_types(data, payload)
            elif status == tr.TABLE_FULL:
                self.values = tr.rehash(*self.values, self.values[0].size * 4)
            else:
                return str_rows, text_bytes

    def _add_types(self, data: np.ndarray, payload: np.ndarray) -> None:
        """Give a slot to every event type of the records that has none."""
        for t in tr.unknown_types(data, payload, self.layout.slot_of_type).tolist():
            fmt = self.dat.formats.get(t)
            assert fmt is not None, "records of types without a format are refused when read"
            try:
                self.layout.add(fmt)
            except ValueError as err:
                raise InputError(
                    self.path,
                    f"bad event format {fmt.name}: {err}",
                    offset=self.dat.formats.offset(t),
                ) from None
            self.slot_event = np.append(self.slot_event, self.pool.code(fmt.name))
            self.longest_event = max(self.longest_event, len(fmt.name.encode()))

    def _name_pids(self, pids: np.ndarray) -> None:
        """Command names as trace-cmd shows them: saved cmdlines, ``<idle>`` for 0, else
        ``<...>``."""
        if not pids.size:
            return
        top = int(pids.max())
        if top >= self.pool_of_pid.size:
            grown = np.full(max(top + 1, 2 * self.pool_of_pid.size), -1, np.int64)
            grown[: self.pool_of_pid.size] = self.pool_of_pid
            self.pool_of_pid = grown
        for p in pids.tolist():
            name = "<idle>" if p == 0 else self.dat.cmdlines.get(p, "<...>")
            self.pool_of_pid[p] = self.pool.code(name)
            self.longest_comm = max(self.longest_comm, len(name.encode()))

    def _name_values(self, places: np.ndarray) -> None:
        """Each new (string op, value) of the table: its text, coded in the pool."""
        keys, ops, codes = self.values
        for at in places.tolist():
            op = self.layout.str_info[int(ops[at])]
            text = shown_value(int(keys[at]), op.binding, op.fmt, op.spec)
            codes[at] = self.pool.code(text)
            c = self.layout.str_columns.index(op.spec.column)
            self.longest[c] = max(self.longest[c], len(text.encode()))


def _lines(out: np.ndarray, first: int) -> np.ndarray:
    """``first, first + 1, ...`` written into ``out``."""
    np.add(np.arange(out.size, dtype=np.int64), first, out=out)
    return out


@lru_cache(maxsize=1)
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(RENDER_THREADS, thread_name_prefix="tracedat-render")


def _strings(n: int, ends: np.ndarray, data: np.ndarray) -> pa.Array:
    """A string column from its ends (offsets) and bytes (64-bit ends if they need it)."""
    if ends.dtype == np.int64:
        if ends[-1] >= 2**31:
            arr = pa.LargeStringArray.from_buffers(
                n, pa.py_buffer(ends), pa.py_buffer(data[: int(ends[-1])])
            )
            return arr.cast(pa.string())
        ends = ends.astype(np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(ends), pa.py_buffer(data[: int(ends[-1])]))


def _valid_where(
    typ: pa.DataType, n: int, bitmap: np.ndarray, count: int, *buffers: np.ndarray
) -> pa.Array:
    """A column of ``n`` rows from its value buffers, valid where ``bitmap`` is set."""
    return pa.Array.from_buffers(
        typ,
        n,
        [None if count == n else pa.py_buffer(bitmap), *(pa.py_buffer(b) for b in buffers)],
        null_count=n - count,
    )
