"""Reusing the memory of tables the caller has dropped.

A streaming reader builds one table after another; memory a process touches for the first
time costs page faults (here, in a VM that hands freed pages back to its host, up to ~2 ms
per MiB), so the buffers of a table nobody holds any more are handed out again instead.
A buffer is known to be free when the pool's own references are the only ones left: every
array and Arrow buffer built on it refers to it through ``base``.
"""

from __future__ import annotations

import mmap
import sys
import threading

import numpy as np

MIN_BYTES = 1 << 16  # smaller requests get fresh memory


class BufferPool:
    """Flat byte buffers lent out as typed arrays and taken back when unreferenced."""

    def __init__(self) -> None:
        self.lent: list[np.ndarray] = []
        self.free: list[np.ndarray] = []
        self.lock = threading.Lock()  # tables are rendered by several threads
        self.reused = 0  # requests served from reclaimed memory

    def empty(self, shape: int | tuple[int, ...], dtype) -> np.ndarray:
        """An uninitialised array (as ``np.empty``), on reused memory when there is some."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if nbytes < MIN_BYTES:
            return np.empty(shape, dtype)
        with self.lock:
            self._reclaim()
            flat = self._fitting(nbytes)
            self.lent.append(flat)
        return flat[:nbytes].view(dtype).reshape(shape)

    def zeros(self, shape: int | tuple[int, ...], dtype) -> np.ndarray:
        """A zeroed array (as ``np.zeros``)."""
        out = self.empty(shape, dtype)
        out.fill(0)
        return out

    def _fitting(self, nbytes: int) -> np.ndarray:
        """The smallest free buffer of ``nbytes`` to twice that, or a new one (rounded up by
        at most an eighth, so that the next request of about the same size fits)."""
        best = None
        for k, flat in enumerate(self.free):
            if nbytes <= flat.size <= 2 * nbytes and (
                best is None or flat.size < self.free[best].size
            ):
                best = k
        if best is not None:
            self.reused += 1
            return self.free.pop(best)
        granule = max(1 << (nbytes.bit_length() - 3), 1)
        # an anonymous mapping of its own, in small pages: numpy asks for transparent huge
        # pages above 4 MiB, whose first touch measured ~3x slower per MiB on this VM
        return np.frombuffer(mmap.mmap(-1, -(-nbytes // granule) * granule), np.uint8)

    def _reclaim(self) -> None:
        """Move the lent buffers that only the pool still refers to back to ``free``."""
        still: list[np.ndarray] = []
        for flat in self.lent:
            # references: the list, the loop variable and getrefcount's argument
            (self.free if sys.getrefcount(flat) <= 3 else still).append(flat)
        self.lent = still
