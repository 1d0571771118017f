"""Page tables of the memory-mapped trace.dat pages: filled a batch at a time before they are
read, dropped after (``madvise``).

Faulting a mapped file in one 4 KiB page (or fault-around block) at a time costs a trap each;
``MADV_POPULATE_READ`` (Linux 5.14) maps a whole batch in one call.  Once a batch is decoded,
``MADV_DONTNEED`` unmaps it again: the pages stay in the page cache, but the process's RSS no
longer grows with the file it streams.  Both only touch read-only shared file mappings (for
which dropping the mapping loses nothing): the caller passes only those, never arrays of
decompressed data (which ``MADV_DONTNEED`` would zero).
"""

from __future__ import annotations

import ctypes
import mmap

import numpy as np

MADV_POPULATE_READ = 22  # include/uapi/asm-generic/mman-common.h, Linux 5.14
_libc = ctypes.CDLL(None, use_errno=True)
_libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)


def _advise(pages: np.ndarray, advice: int) -> None:
    if not pages.size:
        return
    start = pages.ctypes.data & ~(mmap.PAGESIZE - 1)
    _libc.madvise(start, pages.ctypes.data + pages.size - start, advice)  # a hint: errors ignored


def populate(pages: np.ndarray) -> None:
    """Map the file pages behind ``pages`` in one call (older kernels: nothing happens)."""
    _advise(pages, MADV_POPULATE_READ)


def release(pages: np.ndarray) -> None:
    """Unmap the file pages behind ``pages`` (they refault from the page cache if read)."""
    _advise(pages, mmap.MADV_DONTNEED)
