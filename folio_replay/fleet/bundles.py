"""The bundles of a fleet: found from the command line's sources, each with a stable id."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from folio_replay.errors import InputError
from folio_replay.parsers.files import file_kind
from folio_replay.parsers.limits import META_JSON_BYTES

__all__ = ["bundle_id", "find_bundles"]

META = "meta.json"
TRACE_HEAD_BYTES = 1 << 20  # a trace file alone is known by its size and its first MiB


def _walk(root: Path) -> Iterator[Path]:
    """Bundle directories at or under ``root`` (those holding a meta.json; not descended
    into), in name order; symlinked directories are followed once, hidden ones skipped."""
    seen: set[str] = set()
    for top, dirs, _files in os.walk(root, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        if os.path.lexists(os.path.join(top, META)):
            dirs[:] = []
            yield Path(top)
            continue
        dirs[:] = sorted(name for name in dirs if not name.startswith("."))


def _listed(list_file: Path) -> Iterator[Path]:
    """The bundles a list file names: one path a line (relative to the list's directory;
    blank lines and ``#`` comments skipped). A line naming no bundle directory is kept, so
    that the fleet reports it as that bundle's error; a list naming no existing path (some
    other file) is refused."""
    try:
        text = list_file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InputError(
            list_file,
            "not a list of bundles (not UTF-8 text), a bundle directory or a trace.dat",
            offset=err.start,
        ) from None
    entries = [line.strip() for line in text.splitlines()]
    paths = [list_file.parent / entry for entry in entries if entry and entry[0] != "#"]
    if not any(os.path.lexists(path) for path in paths):
        raise InputError(list_file, "names no existing path: not a list of bundles")
    for path in paths:
        found = list(_walk(path)) if path.is_dir() else []
        yield from found or [path]


def _is_trace_dat(path: Path) -> bool:
    """Whether ``path`` is a trace.dat (by its magic): a bundle of that trace alone, which
    names its release and machine (``load_bundle``)."""
    from folio_replay.parsers.tracedat.container import is_trace_dat

    try:
        with open(path, "rb") as fh:
            return is_trace_dat(fh.read(16))
    except OSError as err:
        raise InputError(path, f"cannot read it: {err.strerror or err}") from None


def find_bundles(sources: Iterable[str | Path]) -> list[Path]:
    """The bundles ``sources`` name, resolved, each once, in order: a bundle directory, a
    directory searched for bundles (by their meta.json), a trace.dat alone, or a list file
    (whose lines name any of these)."""
    found: dict[Path, None] = {}
    for source in map(Path, sources):
        if source.is_dir():
            bundles = list(_walk(source))
            if not bundles:
                raise InputError(source, f"no bundle ({META}) in this directory or below")
        elif file_kind(source) is None:
            bundles = [source] if _is_trace_dat(source) else list(_listed(source))
        else:
            raise InputError(source, "not a bundle directory, a directory of bundles or a list")
        found.update(dict.fromkeys(path.resolve() for path in bundles))
    return list(found)


def bundle_id(path: Path) -> str:
    """A stable id of the bundle at ``path``: its resolved path and its meta.json's digest (a
    trace file alone: its size and the digest of its first MiB)."""
    meta = path / META
    digest = f"no {META}"
    if path.is_file():
        try:
            with open(path, "rb") as fh:
                head = hashlib.sha256(fh.read(TRACE_HEAD_BYTES)).hexdigest()
            digest = f"trace file {path.stat().st_size} {head}"
        except OSError as err:
            digest = f"unreadable trace file: {err.strerror}"
    elif file_kind(meta) is None:
        try:
            with open(meta, "rb") as fh:
                digest = hashlib.sha256(fh.read(META_JSON_BYTES + 1)).hexdigest()
        except OSError as err:
            digest = f"unreadable {META}: {err.strerror}"
    return hashlib.sha256(f"{path.resolve()}\0{digest}".encode()).hexdigest()[:16]
