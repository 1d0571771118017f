"""numpy arrays as Arrow arrays, zero-copy, without pyarrow's pandas probe.

``pa.array(ndarray)`` first checks whether its argument is a pandas object, which imports
pandas (0.14-0.3 s here) in a process that never needed it, such as ``folio-replay parse``.
The readers build their numeric columns from the array's buffer instead.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["plain_array"]

_NUMPY = {pa.int64(): np.int64, pa.int32(): np.int32}


def plain_array(values: np.ndarray, typ: pa.DataType) -> pa.Array:
    """``values`` (converted to ``typ``'s numpy dtype if they are not of it) as an Arrow array
    of ``typ`` without nulls, sharing their memory."""
    values = np.ascontiguousarray(values, dtype=_NUMPY[typ])
    return pa.Array.from_buffers(typ, len(values), [None, pa.py_buffer(values)])
