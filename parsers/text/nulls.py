"""The fast readers' many empty typed columns: zero-copy slices of one null array per type
(memory a process touches for the first time costs more here than filling it, so the table's
footprint is much of the reading time).
"""

from __future__ import annotations

import pyarrow as pa

_NULLS: dict[pa.DataType, pa.Array] = {}


def null_column(n: int, typ: pa.DataType) -> pa.Array:
    """An all-null column of ``n`` rows of type ``typ``."""
    have = _NULLS.get(typ)
    if have is None or len(have) < n:
        have = _NULLS[typ] = pa.nulls(max(n, 2 * len(have) if have is not None else n), typ)
    return have.slice(0, n)
