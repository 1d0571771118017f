"""Byte-level helpers of the compiled kernels (numba) of the fast text parser: unaligned
8-byte loads and stores, a byte search eight bytes at a time, ``memcpy``.

numba indexes a uint8 array a byte at a time; reading a u64 or writing 8 characters that way
costs 8 operations instead of one.  No bounds are checked: kernels read and write at most 8
bytes past the range they work on, and keep that much padding after their buffers (the text
buffers: :data:`folio_replay.parsers.text.fast.PAD`).
"""

from __future__ import annotations

import numpy as np
from folio_replay.parsers._native.compiling import announce_compiling
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic

announce_compiling()  # every module of numba kernels imports this one: say when they compile

ONES = np.uint64(0x0101010101010101)
HIGH = np.uint64(0x8080808080808080)


@intrinsic
def load8(typingctx, buf, at):
    """The 8 bytes ``buf[at:at + 8]`` as a little-endian uint64 (any alignment)."""
    sig = types.uint64(buf, types.int64)

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        ptr = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(64).as_pointer())
        return builder.load(ptr, align=1)

    return sig, codegen


@intrinsic
def store8(typingctx, buf, at, value):
    """Write ``value`` (uint64) little-endian into ``buf[at:at + 8]`` (any alignment)."""
    sig = types.void(buf, types.int64, types.uint64)

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        ptr = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(64).as_pointer())
        builder.store(args[2], ptr, align=1)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def memcpy(typingctx, dst, dst_at, src, src_at, count):
    """``dst[dst_at:dst_at + count] = src[src_at:src_at + count]`` as one ``memcpy`` (a slice
    assignment per string costs four times as much)."""
    sig = types.void(dst, types.int64, src, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        to, to_at, frm, frm_at, n = args
        dst_array = context.make_array(signature.args[0])(context, builder, to)
        src_array = context.make_array(signature.args[2])(context, builder, frm)
        cgutils.raw_memcpy(
            builder,
            builder.gep(dst_array.data, [to_at]),
            builder.gep(src_array.data, [frm_at]),
            n,
            1,
        )
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, inline="always")
def find(buf, i, e, byte):
    """The first position in ``i..e-1`` holding ``byte`` (``e``: none), eight bytes at a time:
    a word holds the byte where the word XOR the byte repeated has a zero byte, and the lowest
    such flag marks the first one."""
    pattern = ONES * np.uint64(byte)
    while i + 8 <= e:
        x = load8(buf, i) ^ pattern  # type: ignore[call-arg]
        found = (x - ONES) & ~x & HIGH
        if found:
            return i + np.int64(trailing_zeros(found) >> np.uint64(3))
        i += 8
    while i < e and buf[i] != byte:
        i += 1
    return i


@njit(cache=True, inline="always")
def same_bytes(a, a0, b, b0, n):
    """Whether ``a[a0:a0 + n] == b[b0:b0 + n]``, compared eight bytes at a time."""
    k = 0
    while k + 8 <= n:
        if load8(a, a0 + k) != load8(b, b0 + k):  # type: ignore[call-arg]
            return False
        k += 8
    if k < n:
        mask = (np.uint64(1) << np.uint64(8 * (n - k))) - np.uint64(1)
        return (load8(a, a0 + k) ^ load8(b, b0 + k)) & mask == 0  # type: ignore[call-arg]
    return True


@njit(cache=True)
def has_high(buf, s, e):
    """Whether ``buf[s:e]`` holds a byte above 0x7f (UTF-8 beyond ASCII), eight bytes at a
    time."""
    seen = np.uint64(0)
    while s + 8 <= e:
        seen |= load8(buf, s)  # type: ignore[call-arg]
        s += 8
    while s < e:
        seen |= np.uint64(buf[s])
        s += 1
    return seen & HIGH != 0
