"""zstd decompression for compressed trace.dat v7 sections, through the system's libzstd.

trace-cmd itself links libzstd (Debian package ``libzstd1``, a dependency of ``trace-cmd``), so
reading its compressed files needs no Python package; ``zstandard`` is used when installed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

from folio_replay.errors import InputError


@lru_cache(maxsize=1)
def _libzstd() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("zstd")
    if name is None:
        return None
    lib = ctypes.CDLL(name)
    lib.ZSTD_decompress.restype = ctypes.c_size_t
    lib.ZSTD_decompress.argtypes = (
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_char_p,
        ctypes.c_size_t,
    )
    lib.ZSTD_isError.restype = ctypes.c_uint
    lib.ZSTD_isError.argtypes = (ctypes.c_size_t,)
    lib.ZSTD_getFrameContentSize.restype = ctypes.c_ulonglong
    lib.ZSTD_getFrameContentSize.argtypes = (ctypes.c_char_p, ctypes.c_size_t)
    lib.ZSTD_decompressBound.restype = ctypes.c_ulonglong
    lib.ZSTD_decompressBound.argtypes = (ctypes.c_char_p, ctypes.c_size_t)
    return lib


_CONTENT_UNKNOWN = (1 << 64) - 1  # ZSTD_CONTENTSIZE_UNKNOWN
_CONTENT_ERROR = (1 << 64) - 2  # ZSTD_CONTENTSIZE_ERROR


def decompress(path: str, data: bytes, size: int, offset: int) -> bytes:
    """Decompress one zstd frame of ``size`` bytes, or raise :class:`InputError` at ``offset``;
    a frame that declares another size is refused before anything is allocated."""
    lib = _libzstd()
    if lib is None:
        try:
            import zstandard
        except ImportError:
            raise InputError(
                path,
                "zstd-compressed trace.dat needs libzstd (Debian: libzstd1) "
                "or the zstandard package",
                offset=offset,
            ) from None
        try:
            return zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
        except zstandard.ZstdError as err:
            raise InputError(path, f"corrupt zstd data: {err}", offset=offset) from None
    declared = lib.ZSTD_getFrameContentSize(data, len(data))
    bound = lib.ZSTD_decompressBound(data, len(data))  # from the frame's block headers
    if declared == _CONTENT_ERROR or bound == _CONTENT_ERROR:
        raise InputError(path, "corrupt zstd data in trace.dat", offset=offset)
    if (declared != _CONTENT_UNKNOWN and declared != size) or bound < size:
        held = declared if declared != _CONTENT_UNKNOWN else f"at most {bound}"
        raise InputError(
            path,
            f"corrupt zstd data in trace.dat (a frame of {held} bytes where {size} are due)",
            offset=offset,
        )
    out = ctypes.create_string_buffer(size)
    got = lib.ZSTD_decompress(out, size, data, len(data))
    if lib.ZSTD_isError(got) or got != size:
        raise InputError(path, "corrupt zstd data in trace.dat", offset=offset)
    return out.raw
