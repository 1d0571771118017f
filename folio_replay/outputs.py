"""Writing outputs without destroying anything: every file and directory folio-replay writes
goes through here.

An output is written under a temporary name in its target's directory and renamed into place.
An existing target is kept unless ``force``; even with ``force``, a target is refused when it
is (or holds) an input of the same run (given by the caller, or read in this process: the
readers note every file and bundle they open with :func:`note_input`), when it is not a
regular file (a device, a fifo, a socket, a symlink to one), or, for a directory, when
folio-replay did not write it (it lacks the :data:`MARKER` file). A missing parent directory
is an error. Temporary files and directories are registered while they exist, so that
:func:`remove_temporaries` (called by the CLI on SIGTERM, SIGINT and SIGHUP) leaves nothing
behind.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from folio_replay.errors import InputError

__all__ = [
    "MARKER",
    "check_target",
    "forget_inputs",
    "note_input",
    "remove_temporaries",
    "replace_dir",
    "replace_file",
]

# Written into every directory folio-replay makes (reports, bundles, datasets): only such a
# directory may be replaced with --force.
MARKER = ".folio-replay"

_temporaries: set[Path] = set()
_inputs: set[Path] = set()  # files and directories read in this process (resolved)


def note_input(path: str | Path) -> None:
    """Remember that ``path`` was read: no output may replace it, or lie inside it."""
    _inputs.add(Path(path).resolve())


def forget_inputs() -> None:
    """Forget the inputs noted so far (the CLI does at the start of each command)."""
    _inputs.clear()


def _is_within(path: Path, other: Path) -> bool:
    """Whether ``path`` is ``other`` or lies inside it (both resolved)."""
    return path == other or other in path.parents


def check_target(
    target: Path, force: bool, inputs: Iterable[str | Path] = (), directory: bool = False
) -> None:
    """Refuse to write ``target`` when that would lose something; see the module docstring."""
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(target, f"parent directory {parent} does not exist")
    resolved = target.resolve()
    for source in [*inputs, *sorted(_inputs)]:
        source_path = Path(source).resolve()
        if _is_within(source_path, resolved) or _is_within(resolved, source_path):
            raise InputError(
                target, f"is an input of this run ({source}): refusing to write over it"
            )
    if not (target.exists() or target.is_symlink()):
        return
    if not force:
        raise InputError(target, "already exists (use --force to replace it)")
    mode = os.stat(target).st_mode if target.exists() else os.lstat(target).st_mode
    if directory:
        if not stat.S_ISDIR(mode) or target.is_symlink():
            raise InputError(target, "exists and is not a directory: refusing to replace it")
        if not (target / MARKER).is_file():
            raise InputError(
                target,
                "is a directory folio-replay did not write (no "
                f"{MARKER} file): refusing to replace it",
            )
    elif not stat.S_ISREG(mode) or target.is_symlink():
        raise InputError(target, "exists and is not a regular file: refusing to replace it")


def _temporary(target: Path, directory: bool) -> Path:
    """A new temporary file or directory next to ``target``, registered for cleanup."""
    parent = target.parent if str(target.parent) else Path(".")
    prefix = f".{target.name}.{os.getpid()}."
    if directory:
        path = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=parent)
        os.close(fd)
        path = Path(name)
    _temporaries.add(path)
    return path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    _temporaries.discard(path)


def remove_temporaries() -> None:
    """Remove every temporary output still registered (on a signal or a fatal error)."""
    for path in list(_temporaries):
        _remove(path)


def replace_file(
    target: Path,
    write: Callable[[Path], object],
    force: bool = False,
    inputs: Iterable[str | Path] = (),
) -> Path:
    """Write the file ``target`` with ``write(temporary_path)``, then rename it into place."""
    check_target(target, force, inputs)
    tmp = _temporary(target, directory=False)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        check_target(target, force, inputs)  # nothing appeared meanwhile that must be kept
        os.replace(tmp, target)
    finally:
        _remove(tmp)
    return target


def replace_dir(
    target: Path,
    write: Callable[[Path], object],
    force: bool = False,
    inputs: Iterable[str | Path] = (),
) -> Path:
    """Write the directory ``target`` with ``write(temporary_dir)`` (the :data:`MARKER` file is
    added), then rename it into place; a replaced directory is removed only after the rename."""
    check_target(target, force, inputs, directory=True)
    tmp = _temporary(target, directory=True)
    old: Path | None = None
    try:
        write(tmp)
        (tmp / MARKER).write_text("written by folio-replay\n")
        os.chmod(tmp, 0o755)
        check_target(target, force, inputs, directory=True)
        if target.exists():
            old = _temporary(target, directory=True)
            os.rename(target, old / target.name)
        os.rename(tmp, target)
    finally:
        _remove(tmp)
        if old is not None:
            _remove(old)
    return target
