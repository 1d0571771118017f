"""Saying when the compiled readers are being compiled.

The text and trace.dat readers are numba functions cached on disk (``cache=True``): the first
run after an install or upgrade compiles them (measured here: about 10 s for the text reader,
6 s for trace.dat on a 2.6 GHz Xeon), later runs load them in a fraction of a second. A
listener of numba's ``numba:compile`` event (fired only when a function is really compiled,
not when it is loaded from the cache) issues one :class:`CompileNotice` warning at the first
compilation; the command line prints it as ``folio-replay: note: ...``.
"""

from __future__ import annotations

import warnings
from functools import cache

from numba.core import event

from folio_replay.errors import CompileNotice

__all__ = ["announce_compiling"]


class _FirstCompile(event.Listener):
    """Warns once, when the first compilation starts."""

    def __init__(self) -> None:
        self.said = False

    def on_start(self, ev: event.Event) -> None:
        if not self.said:
            self.said = True
            warnings.warn(
                CompileNotice(
                    "compiling the trace readers (numba: once after an install or upgrade, "
                    "about 10 s; cached for later runs)"
                ),
                stacklevel=2,
            )

    def on_end(self, ev: event.Event) -> None:
        pass


@cache
def announce_compiling() -> None:
    """Register the listener (once per process)."""
    event.register("numba:compile", _FirstCompile())
