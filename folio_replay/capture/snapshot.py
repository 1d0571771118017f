"""Stats snapshots for a bundle: the THP sysfs tree mirrored by relative path, /proc/vmstat and
the capture cgroup's memory.stat; the reclaim set-up (MGLRU, swap devices) for meta.json."""

from __future__ import annotations

import os
from pathlib import Path

THP_ROOT = Path("/sys/kernel/mm/transparent_hugepage")
VMSTAT = Path("/proc/vmstat")
LRU_GEN = Path("/sys/kernel/mm/lru_gen/enabled")
SWAPS = Path("/proc/swaps")


def snapshot_stats(
    dest: Path,
    thp_root: Path = THP_ROOT,
    vmstat: Path = VMSTAT,
    memcg_stat: Path | None = None,
) -> int:
    """Copy every readable regular file under ``thp_root`` to ``dest`` by relative path,
    ``vmstat`` to ``dest/vmstat`` and ``memcg_stat`` (a cgroup's memory.stat) to
    ``dest/memcg/memory.stat``. Returns the number of files written.

    Write-only or unreadable attributes are skipped (reading them fails); nothing is guessed.
    """
    dest.mkdir(parents=True, exist_ok=True)
    written = 0
    if thp_root.is_dir():
        for dirpath, dirnames, filenames in os.walk(thp_root):
            dirnames.sort()
            for fname in sorted(filenames):
                src = Path(dirpath) / fname
                if src.is_symlink() or not src.is_file():
                    continue
                try:
                    data = src.read_bytes()
                except OSError:
                    continue
                out = dest / src.relative_to(thp_root)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(data)
                written += 1
    (dest / "vmstat").write_bytes(vmstat.read_bytes())
    if memcg_stat is not None:
        (dest / "memcg").mkdir()
        (dest / "memcg" / "memory.stat").write_bytes(memcg_stat.read_bytes())
        written += 1
    return written + 1


def mglru_state(lru_gen: Path = LRU_GEN) -> str:
    """``lru_gen/enabled`` as the kernel prints it (e.g. ``0x0007``; ``0x0000`` is off), or
    ``absent`` on a kernel without MGLRU."""
    try:
        return lru_gen.read_text().strip()
    except FileNotFoundError:
        return "absent"


def swap_devices(swaps: Path = SWAPS) -> list[dict]:
    """The active swap devices of ``/proc/swaps`` (sizes in KiB)."""
    devices = []
    for line in swaps.read_text().splitlines()[1:]:
        name, kind, size, used, priority = line.rsplit(None, 4)
        devices.append(
            {
                "filename": name,
                "type": kind,
                "size_kb": int(size),
                "used_kb": int(used),
                "priority": int(priority),
            }
        )
    return devices
