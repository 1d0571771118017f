"""Progress of long work on stderr, drawn by rich: shown only when stderr is a terminal and
``CI`` is unset, so pipes, files and CI logs stay quiet.

Commands open a display (:class:`Steps`, :func:`byte_progress`); library code marks its long
steps with :func:`step`, which shows on the display a command opened and does nothing otherwise.
rich is imported only when progress is drawn (about 20 ms of a command's start-up otherwise).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = ["Steps", "byte_progress", "shown", "step"]

T = TypeVar("T")

_current: ContextVar[Steps | None] = ContextVar("folio_replay_progress", default=None)


def shown(requested: bool | None = None) -> bool:
    """Whether to draw progress: ``requested``, else only on a terminal outside CI."""
    if requested is not None:
        return requested
    return sys.stderr.isatty() and not os.environ.get("CI")


def _steps_display() -> Progress:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        SpinnerColumn(finished_text="✓"),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )


def _bytes_display() -> Progress:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TextColumn("{task.fields[events]:,} events, {task.fields[rate]}"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )


class Steps:
    """A display of named steps, each with a spinner and its elapsed time (a context manager;
    while it is open, :func:`step` in library code adds its steps here)."""

    def __init__(self, enabled: bool | None = None) -> None:
        # None: not drawn
        self.progress: Progress | None = _steps_display() if shown(enabled) else None
        self._token: Token[Steps | None] | None = None

    def __enter__(self) -> Steps:
        if self.progress is not None:
            self.progress.start()
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _current.reset(self._token)
        if self.progress is not None:
            self.progress.stop()

    @contextmanager
    def step(self, description: str, keep: bool = True) -> Iterator[None]:
        """One step: shown running while the block runs, then done (``keep``) or gone."""
        if self.progress is None:
            yield
            return
        task = self.progress.add_task(description, total=None)
        yield
        if keep:
            self.progress.update(task, total=1, completed=1)
        else:
            self.progress.remove_task(task)

    def track(self, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        """``items``, one at a time, counted on a bar."""
        if self.progress is None:
            yield from items
            return
        yield from self.progress.track(items, total=total, description=description)


@contextmanager
def step(description: str) -> Iterator[None]:
    """Mark a long step of library code: shown while it runs under a command's open
    :class:`Steps`, removed when done; nothing without one."""
    steps = _current.get()
    if steps is None:
        yield
        return
    with steps.step(description, keep=False):
        yield


@contextmanager
def byte_progress(
    description: str, total: int, enabled: bool | None = None
) -> Iterator[Callable[..., None]]:
    """A bar over ``total`` bytes with the events made, events/s and the time left. Yields
    ``advance(done_bytes, events, total=None)``."""
    if not shown(enabled):
        yield lambda done, events, new_total=None: None
        return
    progress = _bytes_display()
    task = progress.add_task(description, total=max(total, 1), events=0, rate="")

    def advance(done: int, events: int, new_total: int | None = None) -> None:
        elapsed = progress.tasks[0].elapsed or 0.0
        rate = f"{events / elapsed / 1e6:.2f} M events/s" if elapsed else ""
        if new_total is not None:
            progress.update(task, total=max(new_total, 1))
        progress.update(task, completed=done, events=events, rate=rate)

    with progress:
        yield advance
