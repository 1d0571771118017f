"""tracefs access for capture: find or mount tracefs, and a private instance that cleans up.

Only files inside the instance directory are ever written; the top-level (global) tracing state
is read, never changed.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import gzip
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from folio_replay.errors import InputError

DEFAULT_TRACEFS = Path("/sys/kernel/tracing")
_LOST_MARKER = re.compile(rb"CPU:(\d+) \[LOST (\d+) EVENTS\]")


def mounted_tracefs(mounts: Path = Path("/proc/mounts")) -> Path | None:
    """The first mount point of a tracefs file system, or None."""
    for line in mounts.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "tracefs":
            return Path(parts[1].replace("\\040", " "))
    return None


def require_root(root: Path) -> None:
    """Refuse to go on without root: tracefs instances and event filters need it."""
    uid = os.geteuid()
    if uid != 0:
        raise InputError(root, f"capture needs root to use tracefs (running as uid {uid})")


def open_tracefs(root: Path | None) -> tuple[Path, bool]:
    """The tracefs directory to use and whether this call mounted it (so it must unmount).

    With ``root`` given it is used as is (it must hold ``instances/``). Otherwise the mounted
    tracefs is used, or tracefs is mounted at /sys/kernel/tracing.
    """
    if root is not None:
        if not (root / "instances").is_dir():
            raise InputError(root, "no tracefs here (no instances/ directory)")
        return root, False
    found = mounted_tracefs()
    if found is not None and (found / "instances").is_dir():
        return found, False
    done = subprocess.run(
        ["mount", "-t", "tracefs", "nodev", str(DEFAULT_TRACEFS)], capture_output=True, text=True
    )
    if done.returncode == 0 and not (DEFAULT_TRACEFS / "instances").is_dir():
        unmount(DEFAULT_TRACEFS)
        raise InputError(DEFAULT_TRACEFS, "no tracefs: mounted, but it has no instances/")
    if done.returncode != 0:
        why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "not available"
        raise InputError(DEFAULT_TRACEFS, f"no tracefs: not mounted and mounting it failed ({why})")
    return DEFAULT_TRACEFS, True


def unmount(root: Path) -> None:
    """Unmount a tracefs this process mounted."""
    subprocess.run(["umount", str(root)], check=False, capture_output=True)


def expand_events(root: Path, patterns: list[str]) -> tuple[list[str], list[str]]:
    """Split ``SYSTEM:NAME`` patterns into (events present on this kernel, patterns absent)."""
    present: list[str] = []
    missing: list[str] = []
    events_dir = root / "events"
    for pattern in patterns:
        system, _, name = pattern.partition(":")
        sys_dir = events_dir / system
        names = (
            sorted(p.name for p in sys_dir.iterdir() if (p / "enable").exists())
            if sys_dir.is_dir()
            else []
        )
        hits = [f"{system}:{n}" for n in fnmatch.filter(names, name)]
        if hits:
            present.extend(h for h in hits if h not in present)
        else:
            missing.append(pattern)
    return present, missing


def kswapd_pids(proc: Path = Path("/proc")) -> list[int]:
    """Pids of the kswapd kernel threads (``kswapd0``, ``kswapd1``, ...)."""
    pids = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if re.fullmatch(r"kswapd\d+(:\d+)?", comm):
            pids.append(int(entry.name))
    return sorted(pids)


@dataclass
class Instance:
    """A private tracefs instance ``instances/NAME``: created on enter, removed on exit."""

    root: Path
    name: str
    path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.path = self.root / "instances" / self.name

    def __enter__(self) -> Instance:
        try:
            self.path.mkdir()
        except FileExistsError:
            raise InputError(self.path, "tracefs instance already exists") from None
        self.write("tracing_on", "0")
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def write(self, rel: str, value: str) -> None:
        """Write ``value`` to the instance file ``rel`` (one write, truncating)."""
        with open(self.path / rel, "w") as fh:
            fh.write(value + "\n")

    def read(self, rel: str) -> str:
        """The text of the instance file ``rel``."""
        return (self.path / rel).read_text()

    def enable(self, event: str) -> None:
        """Enable ``SYSTEM:NAME`` in this instance."""
        system, _, name = event.partition(":")
        self.write(f"events/{system}/{name}/enable", "1")

    def cpu_stats(self) -> dict[int, dict[str, int]]:
        """``per_cpu/cpuN/stats`` as integers: entries, overrun, dropped events, ..."""
        stats: dict[int, dict[str, int]] = {}
        for cpu_dir in sorted((self.path / "per_cpu").glob("cpu[0-9]*")):
            values: dict[str, int] = {}
            for line in (cpu_dir / "stats").read_text().splitlines():
                key, _, value = line.partition(":")
                if value.strip().isdigit():
                    values[key.strip().replace(" ", "_")] = int(value)
            stats[int(cpu_dir.name[3:])] = values
        return stats

    def save_trace(self, sink: BinaryIO | gzip.GzipFile) -> tuple[int, dict[int, int]]:
        """Copy the instance's ``trace`` text into ``sink``: (event lines, lost events per CPU).

        Lost counts come from the ``CPU:N [LOST K EVENTS]`` markers the kernel prints in the text.
        """
        lines = 0
        lost: dict[int, int] = {}
        with open(self.path / "trace", "rb") as src:
            for line in src:
                sink.write(line)
                match = _LOST_MARKER.search(line) if b"LOST" in line else None
                if match:
                    cpu = int(match.group(1))
                    lost[cpu] = lost.get(cpu, 0) + int(match.group(2))
                elif line.strip() and not line.startswith(b"#"):
                    lines += 1
        return lines, lost

    def remove(self) -> None:
        """Stop and remove the instance, retrying while the kernel says it is busy."""
        if not self.path.exists():
            return
        with contextlib.suppress(OSError):
            self.write("tracing_on", "0")
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError as err:
                if err.errno == errno.ENOENT:
                    return
                if err.errno != errno.EBUSY:
                    raise
                time.sleep(0.1)
        self.path.rmdir()
