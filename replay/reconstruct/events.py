"""The event table as numpy arrays, selected by event name: what reconstruction reads.

Reconstruction never turns the whole event table into Python objects: it selects the rows of
the events it needs (``rows``) and reads their typed columns as numpy arrays (``ints``,
``strings``). Rows are numbered in time order (``seq``): the table's own order, which every
reader gives sorted by timestamp (the kernel merges CPUs in tracefs text; the trace.dat reader
merges them by time); a table out of order is sorted once, stably, on loading.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["EventArrays"]

MISSING = -1  # an absent (null) int value in the arrays read here


class EventArrays:
    """Columns of one event table; rows are addressed by their time-order number ``seq``."""

    def __init__(self, table: pa.Table) -> None:
        ts = table.column("ts_ns").to_numpy()
        if len(ts) > 1 and bool(np.any(ts[1:] < ts[:-1])):
            table = table.take(pa.array(np.argsort(ts, kind="stable")))
        self.table = table
        self.n = table.num_rows
        encoded = pc.dictionary_encode(table.column("event")).combine_chunks()
        self.names: list[str] = encoded.dictionary.to_pylist()
        self.code = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32)
        self._code_of = {name: i for i, name in enumerate(self.names)}
        self._ints: dict[str, np.ndarray] = {}
        self._codes: dict[str, tuple[np.ndarray, list[str]]] = {}
        self.derived: dict[tuple, object] = {}  # what steps derive from the events, by key

    @cached_property
    def ts(self) -> np.ndarray:
        """Timestamps (ns)."""
        return self.table.column("ts_ns").to_numpy()

    @cached_property
    def pid(self) -> np.ndarray:
        """Thread ids."""
        return self.table.column("pid").to_numpy().astype(np.int64)

    @cached_property
    def line(self) -> np.ndarray:
        """Trace line (or trace.dat record ordinal) of each row."""
        return self.table.column("line").to_numpy().astype(np.int64)

    def has(self, event: str) -> bool:
        """Whether the trace holds any ``event``."""
        return event in self._code_of

    def rows(self, *events: str) -> np.ndarray:
        """The seq of every row of the named events, in time order."""
        codes = [self._code_of[e] for e in events if e in self._code_of]
        if not codes:
            return np.empty(0, dtype=np.int64)
        if len(codes) == 1:
            return np.flatnonzero(self.code == codes[0])
        return np.flatnonzero(np.isin(self.code, codes))

    def is_event(self, event: str, rows: np.ndarray) -> np.ndarray:
        """Whether each of ``rows`` (-1: none) is an ``event`` row."""
        code = self._code_of.get(event)
        if code is None:
            return np.zeros(len(rows), dtype=bool)
        return (rows >= 0) & (self.code[np.maximum(rows, 0)] == code)

    def rows_with_prefix(self, prefix: str) -> np.ndarray:
        """The seq of every row whose event name starts with ``prefix``."""
        return self.rows(*(name for name in self.names if name.startswith(prefix)))

    def event_names(self, rows: np.ndarray) -> np.ndarray:
        """The event name of each row (object array)."""
        return np.asarray(self.names, dtype=object)[self.code[rows]]

    def ints(self, column: str, rows: np.ndarray) -> np.ndarray:
        """Column ``column`` at ``rows`` as int64, nulls as :data:`MISSING` (each column is
        read whole once, then indexed)."""
        if column not in self.table.column_names:
            return np.full(len(rows), MISSING, dtype=np.int64)
        whole = self._ints.get(column)
        if whole is None:
            chunked = pc.fill_null(self.table.column(column), MISSING)
            whole = self._ints[column] = chunked.to_numpy().astype(np.int64, copy=False)
        return whole[rows]

    def strings(self, column: str, rows: np.ndarray) -> np.ndarray:
        """Column ``column`` at ``rows`` as an object array of str (nulls as "")."""
        if column not in self.table.column_names:
            return np.full(len(rows), "", dtype=object)
        values = self.table.column(column).take(pa.array(rows, type=pa.int64()))
        return np.asarray(pc.fill_null(values, "").to_pylist(), dtype=object)

    def codes(self, column: str, rows: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Column ``column`` at ``rows`` dictionary-encoded: (codes, distinct values in the
        order they first occur at ``rows``); for string columns with few distinct values
        (flags, members, names) read at many rows. Asked at many rows, the whole column is
        encoded once and indexed; at few, only those rows are."""
        if column not in self.table.column_names:
            return np.zeros(len(rows), dtype=np.int32), [""]
        whole = self._codes.get(column)
        if whole is None and len(rows) * 8 < self.n:
            taken = self.table.column(column).take(pa.array(rows, type=pa.int64()))
            return _by_first_occurrence(*_encoded(taken))
        if whole is None:
            whole = self._codes[column] = _encoded(self.table.column(column))
        return _by_first_occurrence(whole[0][rows], whole[1])

    def comm(self, rows: np.ndarray) -> pd.Categorical:
        """The command name of each row (categorical: a trace has few)."""
        codes, values = self.codes("comm", rows)
        return (
            pd.Categorical.from_codes(codes, categories=pd.Index(values).unique())
            if len(set(values)) == len(values)
            else pd.Categorical(np.asarray(values)[codes])
        )


def _encoded(values: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """String ``values`` dictionary-encoded, nulls as "" (codes, distinct values in any
    order): the nulls are not turned into strings first."""
    encoded = pc.dictionary_encode(values).combine_chunks()
    distinct = encoded.dictionary.to_pylist()
    codes = encoded.indices
    if codes.null_count:
        if "" not in distinct:
            distinct.append("")
        codes = pc.fill_null(codes, distinct.index(""))
    return codes.to_numpy(zero_copy_only=False).astype(np.int32), distinct


def _by_first_occurrence(codes: np.ndarray, values: list[str]) -> tuple[np.ndarray, list[str]]:
    """``codes`` into ``values`` renumbered so that the values that occur are in the order
    they first occur (those that do not are dropped)."""
    first = np.full(len(values), len(codes), dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)  # of repeated indices the last wins
    present = np.flatnonzero(first < len(codes))
    present = present[np.argsort(first[present], kind="stable")]
    renumber = np.zeros(len(values), dtype=np.int32)
    renumber[present] = np.arange(len(present), dtype=np.int32)
    return renumber[codes], [values[i] for i in present.tolist()]
