"""Kernel counters of a bundle's ``stats/before`` and ``stats/after`` trees as tidy tables.

A tree mirrors ``/sys/kernel/mm/transparent_hugepage/`` by relative path, plus ``vmstat`` (a copy
of ``/proc/vmstat``). Each number becomes one row (``source``, ``size_kb``, ``counter``,
``value``):

* ``mthp``: ``hugepages-<N>kB/stats/<counter>`` (per-size mTHP stats, 6.9+), ``size_kb`` = N;
* ``thp``: every other numeric file (``use_zero_page``, ``khugepaged/pages_collapsed``, ...),
  ``size_kb`` 0 except under ``hugepages-<N>kB/``, ``counter`` = its path under the tree;
* ``vmstat``: each ``name value`` line of ``vmstat``, ``size_kb`` 0;
* ``memcg``: each ``name value`` line of ``memcg/memory.stat`` (the capture's memory cgroup,
  v1 or v2 names as the kernel printed them), ``size_kb`` 0; ``memcg_events``: of
  ``memcg/memory.events``;
* ``meminfo``: each ``Name: value kB`` line of ``meminfo`` (a copy of ``/proc/meminfo``);
* ``zram``: the columns of ``zram/mm_stat``, ``io_stat``, ``bd_stat``, by their documented names.

The files other than the THP tree's, and their forms, are listed in ``stats_files.toml``; the
text files there (``swaps``, ``lru_gen_enabled``, ``memcg/memory.max`` ...) are kept as settings.

Setting files (``enabled``, ``defrag``, ``shmem_enabled`` ...) print their choices with the
selected one in brackets; they are returned apart (:attr:`StatsTree.settings`).

Each file is read strictly: one integer, the ``[choice]`` line of a setting, or ``name value``
lines. A file that is not a regular file (a device, a fifo, also behind a symlink), too large,
not text, empty or neither a number nor a choice is a :class:`Problem`: skipped, and an error
only when a counter the validation needs comes from it (:func:`check_validated`). A counter
named twice and a value outside the signed 64-bit range are errors at once.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from folio_replay.parsers.files import file_kind
from folio_replay.parsers.limits import STATS_FILE_BYTES

from folio_replay.errors import InputError

__all__ = [
    "STATS_COLUMNS",
    "VALIDATED",
    "Problem",
    "StatsTree",
    "check_validated",
    "load_tree",
    "read_settings",
    "read_stats",
    "stats_delta",
]

STATS_COLUMNS = ["source", "size_kb", "counter", "value"]
# The counters folio_replay.replay.validate compares with the models' predictions, by source:
# each must be read on both sides (mthp: for every size that has it on either side).
VALIDATED = {
    "vmstat": ("thp_split_pmd", "thp_deferred_split_page", "pglazyfreed"),
    "mthp": ("split_deferred",),
}
with (Path(__file__).with_name("stats_files.toml")).open("rb") as _fh:
    _FILES = tomllib.load(_fh)
LISTS: dict[str, str] = _FILES["lists"]  # ``name value`` files -> source
COLON_LISTS: dict[str, str] = _FILES["colon_lists"]  # ``Name: value kB`` files -> source
COLUMNS: dict[str, list[str]] = _FILES["columns"]  # one line of numbers -> counter names
TEXT_FILES = frozenset(_FILES["text"]["files"])  # kept as text, as settings
_COLON_LINE = re.compile(r"([\w()]+):[ \t]+(-?[0-9]+)(?: kB)?[ \t\r]*", re.ASCII)
_SIZE_DIR = re.compile(r"^hugepages-(?P<kb>[0-9]{1,9})kB$")
_CHOICES = re.compile(r"^(?:[\w+-]+ )*\[(?P<choice>[\w+-]+)\](?: [\w+-]+)*$", re.ASCII)
_NUMBER = re.compile(r"^-?[0-9]+$")
_BLANKS = " \t\n\r\v\f"  # ASCII white space only (str.strip() also takes \x1c-\x1f)
_LIST_LINE = re.compile(r"([\w.:-]+)[ \t]+(-?[0-9]+)[ \t\r]*", re.ASCII)
_INT64 = (-(1 << 63), (1 << 63) - 1)

Row = tuple[str, int, str, int]


@dataclass(frozen=True)
class Problem:
    """A stats file skipped, and why."""

    path: Path
    reason: str


@dataclass
class StatsTree:
    """One stats tree read: its counters (tidy table), settings and the files skipped."""

    path: Path
    table: pd.DataFrame
    settings: dict[str, str] = field(default_factory=dict)
    problems: dict[str, Problem] = field(default_factory=dict)  # by path under the tree


def _entries(tree: Path) -> list[Path]:
    """Every non-directory entry under ``tree`` (symlinks to directories are not followed)."""
    out = []
    for top, dirs, files in os.walk(tree):
        out += [Path(top) / name for name in files]
        out += [Path(top) / name for name in dirs if (Path(top) / name).is_symlink()]
    return sorted(out)


def _size_kb(rel: Path) -> int:
    match = _SIZE_DIR.match(rel.parts[0]) if len(rel.parts) > 1 else None
    return int(match["kb"]) if match else 0


def _value(path: Path, text: str, line: int) -> int:
    """An integer that fits int64 (else an error naming the file and line)."""
    value = int(text)
    if not _INT64[0] <= value <= _INT64[1]:
        raise InputError(path, f"value {text[:30]} outside the signed 64-bit range", line=line)
    return value


def _text(path: Path) -> str | Problem:
    """The file's text, or why it is not read."""
    kind = file_kind(path)
    if kind is not None:
        return Problem(path, f"{kind}, not a regular file: not read")
    try:
        with open(path, "rb") as fh:
            data = fh.read(STATS_FILE_BYTES + 1)
    except OSError as err:
        return Problem(path, f"unreadable ({err.strerror})")
    if len(data) > STATS_FILE_BYTES:
        return Problem(path, f"larger than {STATS_FILE_BYTES} bytes")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as err:
        return Problem(path, f"not text (byte {err.start})")
    return text if text.strip(_BLANKS) else Problem(path, "empty")


def _column_rows(path: Path, names: list[str], text: str) -> list[Row] | Problem:
    """One line of numbers (zram's ``mm_stat``), a counter per column."""
    values = text.strip(_BLANKS).split()
    if "\n" in text.strip(_BLANKS) or not all(_NUMBER.match(v) for v in values):
        return Problem(path, f"not one line of numbers: {text[:60]!r}")
    if len(values) > len(names):
        return Problem(path, f"{len(values)} columns, {len(names)} known")
    return [("zram", 0, name, _value(path, v, 1)) for name, v in zip(names, values, strict=False)]


def _file_rows(path: Path, name: str, text: str) -> list[Row] | Problem:
    """The rows of a list or column file of :data:`LISTS`, :data:`COLON_LISTS`, :data:`COLUMNS`."""
    if name in COLUMNS:
        return _column_rows(path, COLUMNS[name], text)
    if name in COLON_LISTS:
        return _list_rows(path, COLON_LISTS[name], text, _COLON_LINE, "Name: value")
    return _list_rows(path, LISTS[name], text, _LIST_LINE, "name value")


def _list_rows(
    path: Path, source: str, text: str, pattern: re.Pattern[str], form: str
) -> list[Row] | Problem:
    """The ``name value`` lines of a vmstat-like file (``pattern``: one line's form)."""
    rows: list[Row] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        parts = pattern.fullmatch(line)
        if parts is None:
            if not line and number == text.count("\n") + 1:
                break  # after the last newline
            return Problem(path, f"line {number}: not '{form}': {line[:60]!r}")
        name = parts[1]
        if name in seen:
            raise InputError(path, f"{name} given twice (first on line {seen[name]})", line=number)
        seen[name] = number
        rows.append((source, 0, name, _value(path, parts[2], number)))
    return rows


def load_tree(tree: str | Path) -> StatsTree:
    """Read one stats tree (``stats/before`` or ``stats/after``)."""
    tree = Path(tree)
    out = StatsTree(tree, pd.DataFrame(columns=STATS_COLUMNS))
    rows: list[Row] = []
    for path in _entries(tree):
        rel = path.relative_to(tree)
        text = _text(path)
        if isinstance(text, Problem):
            out.problems[rel.as_posix()] = text
            continue
        name = rel.as_posix()
        if name in TEXT_FILES and not _NUMBER.match(text.strip(_BLANKS)):  # numbers: counters
            out.settings[name] = text.strip(_BLANKS)
            continue
        if name in LISTS or name in COLON_LISTS or name in COLUMNS:
            listed = _file_rows(path, name, text)
            if isinstance(listed, Problem):
                out.problems[name] = listed
            else:
                rows += listed
            continue
        line = text.strip(_BLANKS)
        choice = _CHOICES.match(line)
        if choice:
            out.settings[rel.as_posix()] = choice["choice"]
        elif _NUMBER.match(line) and "\n" not in line:
            size = _size_kb(rel)
            if size and rel.parts[1:2] == ("stats",):
                rows.append(("mthp", size, "/".join(rel.parts[2:]), _value(path, line, 1)))
            else:
                rows.append(("thp", size, rel.as_posix(), _value(path, line, 1)))
        else:
            out.problems[rel.as_posix()] = Problem(
                path, f"neither a number nor a [choice]: {line[:60]!r}"
            )
    out.table = pd.DataFrame(rows, columns=STATS_COLUMNS).astype(
        {"size_kb": "int64", "value": "int64"}
    )
    return out


def read_stats(tree: str | Path) -> pd.DataFrame:
    """The tidy counter table of one stats tree (files with a :class:`Problem` left out)."""
    return load_tree(tree).table


def read_settings(tree: str | Path) -> dict[str, str]:
    """The selected choice of each setting file of a stats tree, by relative path."""
    return load_tree(tree).settings


def _source_file(source: str, size_kb: int, counter: str) -> str:
    """The file (under a tree) a counter is read from."""
    if source == "mthp":
        return f"hugepages-{size_kb}kB/stats/{counter}"
    if source == "thp":
        return counter
    return next(rel for rel, name in LISTS.items() if name == source)


def _validated_keys(before: StatsTree, after: StatsTree) -> set[tuple[str, int, str]]:
    """(source, size_kb, counter) of every counter the validation needs from these trees."""
    keys = {("vmstat", 0, counter) for counter in VALIDATED["vmstat"]}
    for tree in (before, after):
        mthp = tree.table[tree.table["source"] == "mthp"]
        keys |= {
            ("mthp", int(size), counter)
            for size, counter in zip(mthp["size_kb"], mthp["counter"])
            if counter in VALIDATED["mthp"]
        }
        for rel in tree.problems:
            parts = rel.split("/")
            size = _size_kb(Path(rel))
            if size and parts[1:2] == ["stats"] and "/".join(parts[2:]) in VALIDATED["mthp"]:
                keys.add(("mthp", size, "/".join(parts[2:])))
    return keys


def check_validated(before: StatsTree, after: StatsTree) -> None:
    """An :class:`InputError` naming the file when a counter the validation needs is missing
    from a side or comes from a file that was skipped."""
    for source, size_kb, counter in sorted(_validated_keys(before, after)):
        for tree in (before, after):
            rel = _source_file(source, size_kb, counter)
            problem = tree.problems.get(rel)
            if problem is not None:
                raise InputError(
                    problem.path, f"{problem.reason} (its {counter} is needed to validate)"
                )
            table = tree.table
            found = (
                (table["source"] == source)
                & (table["size_kb"] == size_kb)
                & (table["counter"] == counter)
            )
            if not found.any():
                raise InputError(tree.path / rel, f"no {counter} (needed to validate)")


def stats_delta(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Per counter: ``before``, ``after`` and ``delta`` (after - before); a counter present on
    one side only keeps a null on the other and a null delta; a delta outside int64 is an
    error."""
    keys = ["source", "size_kb", "counter"]
    nullable = {"value": "Int64"}  # before the merge: its nulls must not make values floats
    merged = before.astype(nullable).merge(
        after.astype(nullable), on=keys, how="outer", suffixes=("_before", "_after")
    )
    merged = merged.rename(columns={"value_before": "before", "value_after": "after"})
    deltas = [
        None if pd.isna(b) or pd.isna(a) else int(a) - int(b)
        for b, a in zip(merged["before"], merged["after"])
    ]
    for source, size_kb, counter, delta in zip(
        merged["source"], merged["size_kb"], merged["counter"], deltas
    ):
        if delta is not None and not _INT64[0] <= delta <= _INT64[1]:
            raise InputError(
                f"stats/after/{_source_file(str(source), int(size_kb), str(counter))}",
                f"{counter}: after - before = {delta} is outside the signed 64-bit range",
            )
    merged["delta"] = pd.array(deltas, dtype="Int64")
    return merged.sort_values(keys, ignore_index=True)
