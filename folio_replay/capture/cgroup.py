"""A memory cgroup of the capture's own for the traced command: created before it execs, removed
after it (leftover tasks moved out first).

cgroup v2 is used where a mounted cgroup2 offers the memory controller; the group is made under
the nearest ancestor of this process's cgroup that delegates ``memory`` (cgroup.subtree_control;
the root, where it must be enabled first, gets it for the capture and loses it again after).
Otherwise cgroup v1: the group is made inside this process's own memory cgroup, so the limits of
the group the capture runs in still hold for the command.
"""

from __future__ import annotations

import contextlib
import errno
import time
from dataclasses import dataclass, field
from pathlib import Path

from folio_replay.errors import InputError

MOUNTS = Path("/proc/mounts")
SELF_CGROUP = Path("/proc/self/cgroup")


@dataclass
class CgroupPlace:
    """Where the capture's group goes: its parent, and where leftover tasks are moved back."""

    version: int
    parent: Path
    home: Path  # this process's own cgroup (a leaf in v2), where leftover tasks go
    enable_memory: bool = False  # v2 root whose subtree_control lacks memory: enable it


def _mounts(mounts: Path) -> list[tuple[str, Path, str]]:
    """(type, mount point, options) of every mount."""
    rows = []
    for line in mounts.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 4:
            rows.append((parts[2], Path(parts[1].replace("\\040", " ")), parts[3]))
    return rows


def _own_paths(self_cgroup: Path) -> dict[str, str]:
    """This process's cgroup path per hierarchy: ``""`` for v2, each controller for v1."""
    paths: dict[str, str] = {}
    for line in self_cgroup.read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


def _words(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:
        return []


def _v2_place(root: Path, own: str) -> CgroupPlace | None:
    if "memory" not in _words(root / "cgroup.controllers"):
        return None
    home = root / own.lstrip("/")
    node = home
    while node != root and root in node.parents:
        if "memory" in _words(node / "cgroup.subtree_control"):
            return CgroupPlace(2, node, home)
        node = node.parent
    enable = "memory" not in _words(root / "cgroup.subtree_control")
    return CgroupPlace(2, root, home, enable_memory=enable)


def find_place(mounts: Path = MOUNTS, self_cgroup: Path = SELF_CGROUP) -> CgroupPlace:
    """Where this process can make a memory cgroup (v2 preferred); InputError if nowhere."""
    table = _mounts(mounts)
    own = _own_paths(self_cgroup)
    for kind, point, _ in table:
        if kind == "cgroup2" and "" in own:
            place = _v2_place(point, own[""])
            if place is not None:
                return place
    for kind, point, options in table:
        if kind == "cgroup" and "memory" in options.split(","):
            home = point / own.get("memory", "/").lstrip("/")
            home = home if home.is_dir() else point
            return CgroupPlace(1, home, home)
    raise InputError(mounts, "no memory cgroup controller mounted (v1 or v2); use --system")


@dataclass
class MemoryCgroup:
    """The capture's memory cgroup ``PARENT/NAME``: made on enter, removed on exit."""

    place: CgroupPlace
    name: str
    limit: int | None = None
    path: Path = field(init=False)
    limit_bytes: int | None = None  # the limit as the kernel holds it (rounded to pages)
    moved_out: int = 0  # leftover tasks moved back to the capture's own cgroup at removal
    _root_enabled: bool = False  # memory enabled in the v2 root's subtree_control by us

    def __post_init__(self) -> None:
        self.path = self.place.parent / self.name

    @property
    def limit_file(self) -> str:
        return "memory.max" if self.place.version == 2 else "memory.limit_in_bytes"

    @property
    def procs(self) -> Path:
        """The file a task writes its pid into to join the group."""
        return self.path / "cgroup.procs"

    def __enter__(self) -> MemoryCgroup:
        if self.place.enable_memory:
            _write(self.place.parent / "cgroup.subtree_control", "+memory")
            self._root_enabled = True
        try:
            self.path.mkdir()
        except FileExistsError:
            self._restore_root()
            raise InputError(self.path, "memory cgroup already exists") from None
        try:
            if self.limit is not None:
                _write(self.path / self.limit_file, str(self.limit))
                self.limit_bytes = int((self.path / self.limit_file).read_text())
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def memory_stat(self) -> bytes:
        """The group's ``memory.stat``."""
        return (self.path / "memory.stat").read_bytes()

    def tasks(self) -> list[int]:
        return [int(pid) for pid in _words(self.procs)]

    def remove(self) -> None:
        """Move leftover tasks to the capture's own cgroup and remove the group, retrying while
        exiting tasks keep it busy."""
        if self.path.is_dir():
            for attempt in range(50):
                for pid in self.tasks():
                    with contextlib.suppress(OSError):  # it may have exited meanwhile
                        _write(self.place.home / "cgroup.procs", str(pid))
                        self.moved_out += 1
                try:
                    self.path.rmdir()
                    break
                except OSError as err:
                    if err.errno == errno.ENOENT:
                        break
                    if err.errno != errno.EBUSY or attempt == 49:
                        raise InputError(self.path, f"cannot remove memory cgroup: {err}") from None
                    time.sleep(0.1)
        self._restore_root()

    def _restore_root(self) -> None:
        if self._root_enabled:
            with contextlib.suppress(OSError):
                _write(self.place.parent / "cgroup.subtree_control", "-memory")
            self._root_enabled = False

    def meta(self) -> dict:
        """meta.json's ``cgroup`` entry."""
        return {
            "version": self.place.version,
            "path": str(self.path),
            "limit_file": self.limit_file,
            "limit_bytes": self.limit_bytes,
            "moved_out_at_end": self.moved_out,
            "enabled_root_memory_controller": self.place.enable_memory,
        }


def _write(path: Path, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value + "\n")
