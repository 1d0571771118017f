"""Typed columns of the fast text parser, read from the field text of all events of a chunk at
once, as :mod:`folio_replay.parsers.text.fields` reads them from one event.

The groups and fields of ``events.toml`` become flat arrays for the compiled reader
(:func:`folio_replay.parsers.text.values.read_typed`); int64 columns of different groups share value
buffers (an event has one group, so their valid rows are disjoint), string columns are built
from the value spans or, for mapped numbers, from the map's names of the distinct numbers.
A field whose shape the compiled reader does not read (a suffix after a word, a string
without key) sends the events that print it to the reference code.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa
from folio_replay.parsers.schema import FieldSpec, GroupSpec, event_schema
from folio_replay.parsers.text import strings
from folio_replay.parsers.text import values as fv
from folio_replay.parsers.text.nulls import null_column

_KIND = {"int": fv.INT, "hex": fv.HEX, "paren": fv.PAREN, "word": fv.WORD, "flags": fv.TAIL}
NUMBERS = ("int", "hex", "paren")


def zeroed(shape: tuple[int, int]) -> np.ndarray:
    """A zeroed int64 array in its own anonymous mapping: pages no value is written to are
    never touched (numpy would ask for transparent huge pages above 4 MiB, which on this
    kind of VM makes touching them much slower, and zeros in a kernel would write them all)."""
    size = max(shape[0] * shape[1] * 8, 8)
    return np.frombuffer(mmap.mmap(-1, size), np.int64)[: shape[0] * shape[1]].reshape(shape)


def _destination(f: FieldSpec) -> int:
    """Where the compiled reader puts the values of ``f``."""
    if f.type == "int64" and f.value in NUMBERS and f.map is None:
        return fv.TO_INT
    if f.type == "string" and f.value in NUMBERS and f.map is not None:
        return fv.TO_MAP
    if f.type == "string" and f.key and not f.suffix and f.map is None:
        return fv.TO_SPAN if f.value == "word" else fv.TO_SPAN_NO_BLANKS
    return fv.TO_REFERENCE


def _skips(f: FieldSpec) -> bool:
    """Whether the compiled reader reads the number of ``f`` as soon as it finds its key and
    goes on after it (see :func:`folio_replay.parsers.text.values._find_keys`)."""
    return (
        f.value in ("int", "hex")
        and bool(f.key)
        and not any(fv.key_may_follow(c) for c in f.suffix.encode())
    )


@dataclass(frozen=True)
class Layout:
    """The typed fields as flat arrays for :func:`folio_replay.parsers.text.values.read_typed`."""

    fields: tuple[FieldSpec, ...]
    group_first: np.ndarray
    slots_of_group: np.ndarray
    span_rows: int
    by_first: np.ndarray
    same_first: np.ndarray
    keys: np.ndarray
    key_ends: np.ndarray
    kinds: np.ndarray
    skips: np.ndarray
    suffixes: np.ndarray
    suffix_ends: np.ndarray
    optional: np.ndarray
    dest: np.ndarray
    dest_slot: np.ndarray


def _concat(parts: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """The bytes one after the other (and 8 bytes of slack), and where each ends."""
    data = np.frombuffer(b"".join(parts) + bytes(8), np.uint8).copy()
    return data, np.cumsum([len(p) for p in parts]).astype(np.int64)


def _by_first_byte(groups: tuple[GroupSpec, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per group and byte, the first of its fields whose key starts with the byte, and per
    field the next one of the group whose key starts with the same byte (-1: none)."""
    by_first = np.full((len(groups), 256), -1, np.int64)
    fields = [(g, f) for g, group in enumerate(groups) for f in group.fields]
    same_first = np.full(len(fields), -1, np.int64)
    for c in reversed(range(len(fields))):
        g, f = fields[c]
        if f.key:
            first = f.key.encode()[0]
            same_first[c] = by_first[g, first]
            by_first[g, first] = c
    return by_first, same_first


@lru_cache(maxsize=1)
def layout() -> Layout:
    """The layout of ``events.toml``'s groups (built once)."""
    groups = event_schema().groups
    fields = tuple(f for g in groups for f in g.fields)
    dest = [_destination(f) for f in fields]
    slot: list[int] = []
    slots_of_group: list[int] = []
    span_rows = 0
    first = [0]
    for g in groups:
        ints = spans = 0
        for _ in g.fields:
            d = dest[len(slot)]
            slot.append(ints if d == fv.TO_INT else spans)
            ints += d == fv.TO_INT
            spans += {fv.TO_MAP: 1, fv.TO_SPAN: 2, fv.TO_SPAN_NO_BLANKS: 2}.get(d, 0)
        slots_of_group.append(ints)
        span_rows = max(span_rows, spans)
        first.append(first[-1] + len(g.fields))
    by_first, same_first = _by_first_byte(groups)
    keys, key_ends = _concat([f.key.encode() for f in fields])
    suffixes, suffix_ends = _concat([f.suffix.encode() for f in fields])
    return Layout(
        fields,
        np.array(first, np.int64),
        np.array(slots_of_group, np.int64),
        span_rows,
        by_first,
        same_first,
        keys,
        key_ends,
        np.array([_KIND[f.value] for f in fields], np.int64),
        np.array([_skips(f) for f in fields], np.bool_),
        suffixes,
        suffix_ends,
        np.array([f.optional for f in fields], np.bool_),
        np.array(dest, np.int64),
        np.array(slot, np.int64),
    )


def group_index(name: str) -> int:
    """The index of the group whose typed columns the event ``name`` fills (-1: none)."""
    for i, group in enumerate(event_schema().groups):
        if group.covers(name):
            return i
    return -1


class TypedReader:
    """Reads the typed columns of chunk after chunk, reusing its work arrays."""

    def __init__(self) -> None:
        self.layout = layout()
        self.capacity = 0
        self._reserve(1)

    def _reserve(self, n: int) -> None:
        if n <= self.capacity:
            return
        self.capacity = max(n, 2 * self.capacity)
        lay = self.layout
        self.spans = np.zeros((max(lay.span_rows, 1), self.capacity), np.int64)
        self.bitmaps = np.zeros((len(lay.fields), (self.capacity + 7) // 8), np.uint8)
        self.fallback = np.zeros(self.capacity, np.int8)
        self.order = np.zeros(self.capacity, np.int64)

    def read(
        self,
        buf: np.ndarray,
        fstart: np.ndarray,
        fend: np.ndarray,
        codes: np.ndarray,
        group_of_code: np.ndarray,
    ) -> tuple[dict[str, pa.Array], np.ndarray]:
        """Every typed column for the events with field text ``buf[fstart:fend]`` and name
        codes ``codes``; also the events (indices) to parse with the reference code."""
        n = codes.size
        self._reserve(n)
        lay = self.layout
        nbm = (n + 7) // 8
        bitmaps = self.bitmaps[:, :nbm]
        bitmaps[:] = 0
        nvalid = np.zeros(len(lay.fields), np.int64)
        bounds, slots = fv.group_rows(codes, group_of_code, lay.slots_of_group, self.order)
        ints = zeroed((slots, n))
        marked = fv.read_typed(
            buf,
            fstart,
            fend,
            self.order,
            bounds,
            lay.group_first,
            lay.by_first,
            lay.same_first,
            lay.keys,
            lay.key_ends,
            lay.kinds,
            lay.skips,
            lay.suffixes,
            lay.suffix_ends,
            lay.optional,
            lay.dest,
            lay.dest_slot,
            ints,
            self.spans,
            self.bitmaps,  # whole (C-contiguous): a slice would compile a second variant
            nvalid,
            self.fallback,
        )
        columns = {}
        for c, f in enumerate(lay.fields):
            valid = int(nvalid[c])
            if valid == 0:
                columns[f.column] = null_column(n, pa.int64() if f.type == "int64" else pa.string())
                continue
            nulls = n - valid
            bitmap = bitmaps[c].copy() if nulls else None
            dest, slot = lay.dest[c], lay.dest_slot[c]
            if dest == fv.TO_INT:
                columns[f.column] = pa.Array.from_buffers(
                    pa.int64(),
                    n,
                    [pa.py_buffer(bitmap) if nulls else None, pa.py_buffer(ints[slot])],
                    null_count=nulls,
                )
            elif dest == fv.TO_MAP:
                columns[f.column] = _mapped(f, self.spans[slot, :n], bitmaps[c], nulls, bitmap)
            else:
                columns[f.column] = strings.valid_ranges(
                    buf,
                    self.spans[slot, :n],
                    self.spans[slot + 1, :n],
                    bitmap if nulls else bitmaps[c],
                    nulls,
                    dest == fv.TO_SPAN_NO_BLANKS,
                )
        return columns, np.flatnonzero(self.fallback[:n]) if marked else np.zeros(0, np.int64)


def _mapped(
    f: FieldSpec, numbers: np.ndarray, bits: np.ndarray, nulls: int, bitmap: np.ndarray | None
) -> pa.Array:
    """The map's names of the valid ``numbers``, computed once per distinct number."""
    codes, distinct = fv.distinct_codes(numbers, bits)
    names = [f.symbol(int(u)).encode() for u in distinct]
    table = np.frombuffer(b"".join(names) + bytes(8), np.uint8)
    offsets = np.zeros(len(names) + 1, np.int64)
    offsets[1:] = np.cumsum([len(x) for x in names])
    return strings.decoded(table, offsets, codes, bitmap, nulls)
