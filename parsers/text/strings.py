"""Arrow string columns of the fast text parser, written by compiled kernels (numba) straight
into Arrow's buffers (int32 offsets, bytes): from byte ranges of the text, or from codes into
a table of distinct strings.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from folio_replay.parsers._native.byteops import memcpy
from folio_replay.parsers.text.scan import SP
from numba import njit


@njit(cache=True)
def _copy_ranges(src, starts, ends):
    """(offsets, bytes) of ``src[starts[i]:ends[i]]``."""
    n = starts.size
    offsets = np.empty(n + 1, np.int32)
    offsets[0] = 0
    total = 0
    for r in range(n):
        total += ends[r] - starts[r]
        offsets[r + 1] = total
    data = np.empty(total, np.uint8)
    for r in range(n):
        memcpy(data, np.int64(offsets[r]), src, starts[r], ends[r] - starts[r])
    return offsets, data


@njit(cache=True)
def _copy_valid_ranges(src, starts, ends, bitmap, no_blanks):
    """(offsets, bytes) of ``src[starts[i]:ends[i]]`` where ``bitmap`` has bit i (empty
    elsewhere), without the blanks when ``no_blanks``."""
    n = starts.size
    offsets = np.empty(n + 1, np.int32)
    offsets[0] = 0
    total = 0
    for r in range(n):
        if bitmap[r >> 3] >> (r & 7) & 1:
            if no_blanks:
                for k in range(starts[r], ends[r]):
                    total += src[k] != SP
            else:
                total += ends[r] - starts[r]
        offsets[r + 1] = total
    data = np.empty(total, np.uint8)
    for r in range(n):
        o = offsets[r]
        if o == offsets[r + 1]:
            continue
        if no_blanks:
            for k in range(starts[r], ends[r]):
                if src[k] != SP:
                    data[o] = src[k]
                    o += 1
        else:
            memcpy(data, np.int64(o), src, starts[r], ends[r] - starts[r])
    return offsets, data


@njit(cache=True)
def _copy_codes(names, name_off, codes):
    """(offsets, bytes) of the strings ``names[name_off[c]:name_off[c+1]]`` of ``codes``
    (empty for code -1)."""
    n = codes.size
    offsets = np.empty(n + 1, np.int32)
    offsets[0] = 0
    total = 0
    for r in range(n):
        c = codes[r]
        if c >= 0:
            total += name_off[c + 1] - name_off[c]
        offsets[r + 1] = total
    data = np.empty(total, np.uint8)
    for r in range(n):
        c = codes[r]
        if c >= 0:
            memcpy(data, np.int64(offsets[r]), names, name_off[c], name_off[c + 1] - name_off[c])
    return offsets, data


def _array(
    n: int, offsets: np.ndarray, data: np.ndarray, bitmap: pa.Buffer | None = None, nulls: int = 0
) -> pa.Array:
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data), bitmap, nulls)


def ranges(src: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """Strings ``src[starts[i]:ends[i]]`` (``src`` < 2 GiB)."""
    return _array(starts.size, *_copy_ranges(src, starts, ends))


def valid_ranges(
    src: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    bitmap: np.ndarray,
    nulls: int,
    no_blanks: bool,
) -> pa.Array:
    """Strings ``src[starts[i]:ends[i]]`` where bit i of the Arrow validity ``bitmap`` is set,
    null elsewhere; without their blanks when ``no_blanks``."""
    offsets, data = _copy_valid_ranges(src, starts, ends, bitmap, no_blanks)
    return _array(starts.size, offsets, data, pa.py_buffer(bitmap) if nulls else None, nulls)


def decoded(
    names: np.ndarray,
    name_off: np.ndarray,
    codes: np.ndarray,
    bitmap: np.ndarray | None = None,
    nulls: int = 0,
) -> pa.Array:
    """The strings of ``codes`` in the table ``names``/``name_off`` (code -1: null, as the
    Arrow validity ``bitmap`` says)."""
    offsets, data = _copy_codes(names, name_off, codes)
    return _array(codes.size, offsets, data, pa.py_buffer(bitmap) if nulls else None, nulls)
