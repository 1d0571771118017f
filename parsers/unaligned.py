"""Unaligned 8-byte loads and stores on uint8 arrays, for compiled loops (numba intrinsics).

numba indexes a uint8 array a byte at a time; reading a record's u64 field or writing 8
characters of text that way costs 8 operations instead of one.  No bounds are checked: the
callers keep 8 bytes of padding after every buffer they write this way.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic


def _pointer64(context, builder, array_type, array, index):
    ary = context.make_array(array_type)(context, builder, array)
    return builder.bitcast(builder.gep(ary.data, [index]), ir.IntType(64).as_pointer())


@intrinsic
def load_u64(typingctx, array, index):
    """The 8 bytes at ``array[index:index + 8]`` as a little-endian uint64."""
    def codegen(context, builder, signature, args):
        ptr = _pointer64(context, builder, signature.args[0], args[0], args[1])
        value = builder.load(ptr)
        value.align = 1   # noqa: unaligned on purpose
        return value
    return types.uint64(array, index), codegen


@intrinsic
def store_u64(typingctx, array, index, value):
    """Write ``value`` (uint64) little-endian into ``array[index:index + 8]``."""
    def codegen(context, builder, signature, args):
        ptr = _pointer64(context, builder, signature.args[0], args[0], args[1])
        store = builder.store(args[2], ptr)
        store.align = 1
        return context.get_dummy_value()
    return types.void(array, index, types.uint64), codegen
