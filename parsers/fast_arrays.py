"""Typed columns of the fast readers with few buffers: a chunk's many empty typed columns are
zero-copy slices of one null array per type, and int64 columns of different groups share value
buffers.  Memory a process touches for the first time costs more here than filling it, so the
table's footprint is much of the reading time.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_NULLS: dict[pa.DataType, pa.Array] = {}


def null_column(n: int, typ: pa.DataType) -> pa.Array:
    """An all-null column of ``n`` rows of type ``typ``."""
    have = _NULLS.get(typ)
    if have is None or len(have) < n:
        have = _NULLS[typ] = pa.nulls(max(n, 2 * len(have) if have is not None else n), typ)
    return have.slice(0, n)


class IntColumns:
    """Full-length int64 columns of one table, filled a group of rows at a time.

    Columns of different groups are valid on disjoint rows (an event has one group), so they
    share value buffers: a group's k-th column written is stored in buffer k, and each column
    keeps only its own validity.  A table holds as many value buffers as its widest group has
    columns, not one per column (Arrow leaves the values under nulls undefined; here they are
    another group's values).
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.buffers: list[np.ndarray] = []
        self.buffer_of: dict[str, int] = {}
        self.valid: dict[str, np.ndarray] = {}
        self.used: dict[str, int] = {}   # group -> buffers its columns took

    def write(self, group: str, column: str, rows: np.ndarray, values: np.ndarray,
              ok: np.ndarray | None = None) -> None:
        """Set ``column`` (of ``group``) at ``rows`` to ``values``, valid where ``ok``."""
        if column not in self.buffer_of:
            k = self.used.get(group, 0)
            self.used[group] = k + 1
            if k == len(self.buffers):
                self.buffers.append(np.zeros(self.n, np.int64))
            self.buffer_of[column] = k
            self.valid[column] = np.zeros(self.n, bool)
        self.buffers[self.buffer_of[column]][rows] = values
        self.valid[column][rows] = True if ok is None else ok

    def array(self, column: str) -> pa.Array:
        """The column (all null when never written or never valid)."""
        valid = self.valid.get(column)
        nulls = self.n - (int(np.count_nonzero(valid)) if valid is not None else 0)
        if nulls == self.n:
            return null_column(self.n, pa.int64())
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
        return pa.Array.from_buffers(pa.int64(), self.n,
                                     [bitmap, pa.py_buffer(self.buffers[self.buffer_of[column]])],
                                     null_count=nulls)
