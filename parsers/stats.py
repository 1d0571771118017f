"""Kernel counters of a bundle's ``stats/before`` and ``stats/after`` trees as tidy tables.

A tree mirrors ``/sys/kernel/mm/transparent_hugepage/`` by relative path, plus ``vmstat`` (a copy
of ``/proc/vmstat``). Each number becomes one row (``source``, ``size_kb``, ``counter``,
``value``):

* ``mthp``: ``hugepages-<N>kB/stats/<counter>`` (per-size mTHP stats, 6.9+), ``size_kb`` = N;
* ``thp``: every other numeric file (``use_zero_page``, ``khugepaged/pages_collapsed``, ...),
  ``size_kb`` 0 except under ``hugepages-<N>kB/``, ``counter`` = its path under the tree;
* ``vmstat``: each ``name value`` line of ``vmstat``, ``size_kb`` 0;
* ``memcg``: each ``name value`` line of ``memcg/memory.stat`` (the capture's memory cgroup,
  v1 or v2 names as the kernel printed them), ``size_kb`` 0.

Setting files (``enabled``, ``defrag``, ``shmem_enabled`` ...) print their choices with the
selected one in brackets; they are returned apart by :func:`read_settings`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from folio_replay.errors import InputError

STATS_COLUMNS = ["source", "size_kb", "counter", "value"]
_SIZE_DIR = re.compile(r"^hugepages-(?P<kb>\d+)kB$")
_CHOICE = re.compile(r"\[(?P<choice>[\w-]+)\]")
_NUMBER = re.compile(r"^-?\d+$")


def _files(tree: Path) -> list[Path]:
    return sorted(p for p in tree.rglob("*") if p.is_file())


def _size_kb(rel: Path) -> int:
    match = _SIZE_DIR.match(rel.parts[0]) if len(rel.parts) > 1 else None
    return int(match["kb"]) if match else 0


def _vmstat_rows(path: Path) -> list[tuple[str, int, str, int]]:
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if len(parts) != 2 or not _NUMBER.match(parts[1]):
            raise InputError(path, f"cannot parse vmstat line: {line[:60]!r}", line=number)
        rows.append(("vmstat", 0, parts[0], int(parts[1])))
    return rows


def _memcg_rows(path: Path) -> list[tuple[str, int, str, int]]:
    return [("memcg", size, counter, value) for _, size, counter, value in _vmstat_rows(path)]


def read_stats(tree: str | Path) -> pd.DataFrame:
    """The tidy counter table of one stats tree (``stats/before`` or ``stats/after``)."""
    tree = Path(tree)
    rows: list[tuple[str, int, str, int]] = []
    for path in _files(tree):
        rel = path.relative_to(tree)
        if rel == Path("vmstat"):
            rows += _vmstat_rows(path)
            continue
        if rel == Path("memcg/memory.stat"):
            rows += _memcg_rows(path)
            continue
        text = path.read_text().strip()
        if _CHOICE.search(text):
            continue  # a setting: see read_settings
        if not _NUMBER.match(text):
            raise InputError(path, f"neither a number nor a [choice]: {text[:60]!r}", line=1)
        size = _size_kb(rel)
        if size and rel.parts[1:2] == ("stats",):
            rows.append(("mthp", size, "/".join(rel.parts[2:]), int(text)))
        else:
            rows.append(("thp", size, rel.as_posix(), int(text)))
    table = pd.DataFrame(rows, columns=STATS_COLUMNS)
    return table.astype({"size_kb": "int64", "value": "int64"})


def read_settings(tree: str | Path) -> dict[str, str]:
    """The selected choice of each setting file of a stats tree, by relative path."""
    tree = Path(tree)
    settings = {}
    for path in _files(tree):
        match = _CHOICE.search(path.read_text())
        if match and path.name != "vmstat":
            settings[path.relative_to(tree).as_posix()] = match["choice"]
    return settings


def stats_delta(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Per counter: ``before``, ``after`` and ``delta`` (after - before); a counter present on
    one side only keeps a null on the other and a null delta."""
    keys = ["source", "size_kb", "counter"]
    merged = before.merge(after, on=keys, how="outer", suffixes=("_before", "_after"))
    merged = merged.rename(columns={"value_before": "before", "value_after": "after"})
    merged = merged.astype({"before": "Int64", "after": "Int64"})
    merged["delta"] = merged["after"] - merged["before"]
    return merged.sort_values(keys, ignore_index=True)
