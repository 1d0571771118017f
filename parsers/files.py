"""Input files must be regular files: a device, a fifo or a socket (also behind a symlink)
is refused before it is opened (reading /dev/zero never ends, a fifo blocks)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from folio_replay.errors import InputError
from folio_replay.outputs import note_input

__all__ = ["file_kind", "regular_file"]

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a fifo"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(path: str | Path) -> str | None:
    """None for a regular file (symlinks followed); else what it is (``missing`` when it does
    not exist or is a dangling symlink)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as err:
        return f"unreadable ({err.strerror})"
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def regular_file(path: str | Path, what: str = "file") -> str:
    """``path`` as a string, or :class:`InputError` when it is not a regular file; noted as an
    input of the run (:func:`folio_replay.outputs.note_input`: no output replaces it)."""
    kind = file_kind(path)
    if kind == "missing":
        raise InputError(path, f"no such {what}")
    if kind is not None:
        raise InputError(path, f"{what} is {kind}, not a regular file: not read")
    note_input(path)
    return str(path)
