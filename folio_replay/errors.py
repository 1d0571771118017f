"""What users see when input is bad or a run is cut short: one line naming the file and place,
and the exit codes of the command.

* :class:`InputError`: bad or missing input; the run stops (exit :data:`EXIT_INPUT`).
* :class:`InputWarning`: damage the run can go past (a skipped ring-buffer page, an unreadable
  stats file nothing needs); reported on one line, the run goes on.
* :class:`CompileNotice`: the compiled trace readers are being compiled (a first run); said
  on a terminal.
* :class:`Interrupted`: SIGTERM, SIGINT or SIGHUP (exit :data:`EXIT_INTERRUPTED`).
"""

from __future__ import annotations

import warnings

__all__ = [
    "EXIT_INPUT",
    "EXIT_INTERRUPTED",
    "EXIT_MISMATCH",
    "EXIT_OK",
    "CompileNotice",
    "InputError",
    "InputWarning",
    "Interrupted",
    "warn",
]

EXIT_OK = 0
EXIT_MISMATCH = 1  # validate: a predicted counter does not match the bundle's
EXIT_INPUT = 2  # bad input, refused output, usage error
EXIT_INTERRUPTED = 130  # a signal stopped the run; its temporary files are removed


def _where(path: str, line: int | None, offset: int | None) -> str:
    """``FILE:LINE``, ``FILE@OFFSET`` (hex) or ``FILE``."""
    if line is not None:
        return f"{path}:{line}"
    if offset is not None:
        return f"{path}@{offset:#x}"
    return path


class InputError(Exception):
    """Bad or missing input. Rendered by the CLI as ``FILE:LINE: message`` with exit code 2."""

    def __init__(
        self, path: object, message: str, line: int | None = None, offset: int | None = None
    ) -> None:
        self.path = str(path)
        self.message = message
        self.line = line
        self.offset = offset
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """``FILE:LINE: message`` (or ``FILE@OFFSET`` for binary input)."""
        return f"{_where(self.path, self.line, self.offset)}: {self.message}"


class CompileNotice(UserWarning):
    """The compiled trace readers are being compiled (the first run after an install or
    upgrade; :mod:`folio_replay.parsers._native.compiling`)."""


class InputWarning(UserWarning):
    """Damage in an input that the run goes past; rendered as ``FILE@OFFSET: message``."""

    def __init__(
        self, path: object, message: str, line: int | None = None, offset: int | None = None
    ) -> None:
        self.path = str(path)
        self.message = message
        self.line = line
        self.offset = offset
        super().__init__(self.one_line())

    def one_line(self) -> str:
        return f"{_where(self.path, self.line, self.offset)}: {self.message}"


def warn(path: object, message: str, line: int | None = None, offset: int | None = None) -> None:
    """Report damage the run goes past (a Python warning of category :class:`InputWarning`)."""
    warnings.warn(InputWarning(path, message, line, offset), stacklevel=2)


class Interrupted(BaseException):
    """A signal asked the run to stop (raised by the CLI's handler; not an ``Exception``, so
    that no ``except Exception`` swallows it)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by signal {signum}")
