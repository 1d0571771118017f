"""All-null columns shared between the fast readers' tables: a chunk's many empty typed columns
are zero-copy slices of one array per type instead of fresh zeroed buffers (on this VM, memory
a process touches for the first time costs more than filling it)."""

from __future__ import annotations

import pyarrow as pa

_NULLS: dict[pa.DataType, pa.Array] = {}


def null_column(n: int, typ: pa.DataType) -> pa.Array:
    """An all-null column of ``n`` rows of type ``typ``."""
    have = _NULLS.get(typ)
    if have is None or len(have) < n:
        have = _NULLS[typ] = pa.nulls(max(n, 2 * len(have) if have is not None else n), typ)
    return have.slice(0, n)
