"""Typed columns of the fast text parser, read from the field text of all rows of a group at
once, as :mod:`parsers.fields` reads them from one row.

Numbers (``int``, ``hex``, ``paren``) and the spans of ``word`` values are read by compiled
kernels (:mod:`parsers.fast_kernels`); values that run to the end of the text (``flags``) are
read once per distinct text with the reference pattern.  A row whose text does not have
exactly the shape the reference pattern accepts is handed back to the caller, which parses it
with the reference code.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa

from parsers import fast_kernels as fk
from parsers.fast_arrays import IntColumns, null_column
from parsers.fields import _END, _VALUE_PATTERNS, FieldError, _number
from parsers.schema import FieldSpec, GroupSpec, formats

_KIND = {"int": fk.INT, "hex": fk.HEX, "paren": fk.PAREN, "word": fk.WORD, "flags": fk.TAIL}


def strings(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """Arrow strings of ``buf[starts[i]:ends[i]]`` (copied into one buffer; ``buf`` < 2 GiB)."""
    offsets, data = fk.compact_strings(buf, starts, ends)
    return pa.StringArray.from_buffers(starts.size, pa.py_buffer(offsets), pa.py_buffer(data))


def typed_columns(buf: np.ndarray, events: pa.Array, fields: pa.Array, f_start: np.ndarray,
                  f_end: np.ndarray) -> tuple[dict[str, pa.Array], np.ndarray]:
    """Every typed column for the rows of ``events``; also the rows (indices) that must be
    parsed by the reference code instead."""
    spec = formats()
    n = len(events)
    enc = events.dictionary_encode()
    group_of = np.array([_group_index(spec.groups, name) for name in enc.dictionary.to_pylist()]
                        + [-1], np.int64)
    row_group = group_of[enc.indices.to_numpy(zero_copy_only=False)] if n else np.zeros(0, int)
    parts: dict[str, list] = {f.column: [] for f in spec.typed_fields}
    ints = IntColumns(n)
    fallback = np.zeros(n, bool)
    by_group = np.argsort(row_group.astype(np.int16), kind="stable")   # radix sort
    bounds = np.searchsorted(row_group[by_group], np.arange(len(spec.groups) + 1))
    for gi, group in enumerate(spec.groups):
        rows = by_group[bounds[gi]:bounds[gi + 1]]
        if rows.size == 0:
            continue
        for f, values, valid, again in _read_group(buf, group, f_start[rows], f_end[rows]):
            fallback[rows[again]] = True
            if f.type == "int64" and isinstance(values, np.ndarray):
                if valid.any():
                    ints.write(group.name, f.column, rows, values, valid)
            else:
                parts[f.column].append((rows, values, valid))
    columns = {f.column: ints.array(f.column) if f.column in ints.valid or not parts[f.column]
               else _assemble(n, f, parts[f.column]) for f in spec.typed_fields}
    return columns, np.flatnonzero(fallback)


def _group_index(groups: tuple[GroupSpec, ...], name: str) -> int:
    for i, group in enumerate(groups):
        if group.covers(name):
            return i
    return -1


def _read_group(buf: np.ndarray, group: GroupSpec, start: np.ndarray, end: np.ndarray):
    """(field, values, valid, needs-reference) of each typed field of ``group`` over its rows."""
    keys = [f.key.encode() for f in group.fields]
    suffixes = [f.suffix.encode() for f in group.fields]
    values, vs, ve, status = fk.read_group(
        buf, start, end, np.frombuffer(b"".join(keys), np.uint8),
        np.cumsum([len(k) for k in keys]).astype(np.int64),
        np.array([_KIND[f.value] for f in group.fields], np.int64),
        np.frombuffer(b"".join(suffixes), np.uint8),
        np.cumsum([len(x) for x in suffixes]).astype(np.int64))
    for k, f in enumerate(group.fields):
        st = status[:, k]
        valid = st == fk.OK
        again = (st == fk.FALLBACK) | ((st == fk.ABSENT) & (not f.optional))
        kind = _KIND[f.value]
        if kind in (fk.INT, fk.HEX, fk.PAREN):
            vals = values[:, k]
            yield f, (_symbols(f, vals) if f.map is not None else vals), valid, again
        elif f.suffix or not f.key:   # shapes the span reader does not check: reference
            yield f, null_column(start.size, pa.string()), np.zeros(start.size, bool), valid | again
        else:
            text = strings(buf, np.where(valid, vs[:, k], 0), np.where(valid, ve[:, k], 0))
            if kind == fk.WORD:
                yield f, text, valid, again
            else:
                tails, readable = _read_tails(f, text)
                yield f, tails, valid & readable, again | (valid & ~readable)


def _read_tails(f: FieldSpec, tails: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Values running to the end of the text, read once per distinct tail as the reference
    reads them; (values, readable)."""
    pattern = re.compile(_VALUE_PATTERNS[f.value] + re.escape(f.suffix) + _END)
    enc = tails.dictionary_encode()
    values: list[object] = []
    for tail in enc.dictionary.to_pylist():
        m = pattern.match(tail)
        values.append(None if m is None else _convert(f, m.group("v")))
    idx = enc.indices.to_numpy(zero_copy_only=False)
    readable = np.array([v is not None for v in values] + [False], bool)[idx]
    typ = pa.string() if f.type == "string" else pa.int64()
    return pa.array(values, typ).take(pa.array(idx)), readable


def _convert(f: FieldSpec, raw: str) -> int | str | None:
    """A matched value as :func:`parsers.fields.read_field` turns it into the column's value."""
    if f.value in ("int", "hex", "paren"):
        try:
            number = _number(raw, f.value == "hex")
        except FieldError:
            return None
        return f.symbol(number) if f.map is not None else number
    if f.value == "flags":
        return raw.replace(" ", "")
    return raw


def _symbols(f: FieldSpec, values: np.ndarray) -> pa.Array:
    """The map's names of numbers, computed once per distinct number."""
    uniq, inverse = np.unique(values, return_inverse=True)
    names = pa.array([f.symbol(int(u)) for u in uniq], pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(inverse.astype(np.int32)), names).cast(
        pa.string())


def _assemble(n: int, f: FieldSpec, parts: list) -> pa.Array:
    """One full-length column from the per-group pieces of Arrow values (rows outside them
    are null)."""
    typ = pa.int64() if f.type == "int64" else pa.string()
    if not any(ok.any() for _, _, ok in parts):
        return null_column(n, typ)
    pieces, take = [], np.full(n, -1, np.int64)
    base = 0
    for rows, v, ok in parts:
        arr = v if isinstance(v, pa.Array) else pa.array(v, typ)
        pieces.append(arr.cast(typ))
        take[rows[ok]] = base + np.flatnonzero(ok)
        base += len(arr)
    combined = pa.concat_arrays(pieces)
    return combined.take(pa.array(take, pa.int64(), mask=take < 0))
