"""Stats snapshots for a bundle: the THP sysfs tree mirrored by relative path, plus /proc/vmstat."""

from __future__ import annotations

import os
from pathlib import Path

THP_ROOT = Path("/sys/kernel/mm/transparent_hugepage")
VMSTAT = Path("/proc/vmstat")


def snapshot_stats(dest: Path, thp_root: Path = THP_ROOT, vmstat: Path = VMSTAT) -> int:
    """Copy every readable regular file under ``thp_root`` to ``dest`` by relative path, and
    ``vmstat`` to ``dest/vmstat``. Returns the number of files written.

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
    return written + 1
