"""A capture bundle: ``meta.json``, a trace file, ``stats/before`` and ``stats/after``.

A bundle missing parts still loads; :attr:`Bundle.missing` names what it lacks and nothing is
filled in for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from folio_replay.parsers.stats import STATS_COLUMNS, read_settings, read_stats, stats_delta
from folio_replay.parsers.table import Trace
from folio_replay.parsers.trace import read_trace

from folio_replay.errors import InputError

# Trace files a bundle may hold, in the order one is chosen.
TRACE_FILES = ("trace.txt.gz", "trace.txt", "trace.dat", "perf.txt.gz", "perf.txt")
META_REQUIRED = ("kernel", "arch", "command", "name")


@dataclass
class Bundle:
    """One capture bundle directory, loaded."""

    path: Path
    meta: dict
    trace_path: Path | None
    stats_before: pd.DataFrame
    stats_after: pd.DataFrame
    settings_before: dict[str, str] = field(default_factory=dict)
    settings_after: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    def stats_delta(self) -> pd.DataFrame:
        """Counters before, after and their delta (needs both stats trees)."""
        for side in ("stats/before", "stats/after"):
            if side in self.missing:
                raise InputError(self.path, f"bundle has no {side}: no stats deltas")
        return stats_delta(self.stats_before, self.stats_after)

    def read_trace(self) -> Trace:
        """The bundle's trace parsed into the event table."""
        if self.trace_path is None:
            raise InputError(self.path, "bundle has no trace file (" + ", ".join(TRACE_FILES) + ")")
        return read_trace(self.trace_path)


def _load_meta(path: Path, missing: list[str]) -> dict:
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        missing.append("meta.json")
        return {}
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(meta_path, f"invalid JSON: {err.msg}", line=err.lineno) from None
    if not isinstance(meta, dict):
        raise InputError(meta_path, "not a JSON object", line=1)
    missing += [f"meta.json:{key}" for key in META_REQUIRED if key not in meta]
    return meta


def _load_stats(path: Path, side: str, missing: list[str]) -> tuple[pd.DataFrame, dict[str, str]]:
    tree = path / "stats" / side
    if not tree.is_dir():
        missing.append(f"stats/{side}")
        return pd.DataFrame(columns=STATS_COLUMNS), {}
    if not (tree / "vmstat").is_file():
        missing.append(f"stats/{side}/vmstat")
    return read_stats(tree), read_settings(tree)


def load_bundle(path: str | Path) -> Bundle:
    """Load a bundle directory; what it lacks is listed in ``.missing``."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(path, "not a bundle directory")
    missing: list[str] = []
    meta = _load_meta(path, missing)
    trace_path = next((path / name for name in TRACE_FILES if (path / name).is_file()), None)
    if trace_path is None:
        missing.append("trace")
    before, settings_before = _load_stats(path, "before", missing)
    after, settings_after = _load_stats(path, "after", missing)
    return Bundle(path, meta, trace_path, before, after, settings_before, settings_after, missing)
