"""A fleet dataset: the speedups of many reports, as a hive-partitioned Parquet dataset
(``DATASET/arch=x86/part-0.parquet``, ...), one row per bundle, arch and model.

Columns (partition keys become columns too): ``bundle`` (the bundle's name), ``arch`` (the
priced arch), ``kernel_series`` (``6.12``: the captured kernel's major.minor), ``release``,
``captured_model``, ``model``, ``time_ns`` (predicted reclaim time under ``model``) and
``speedup`` (the captured kernel's model's time over ``time_ns``). Extra columns are kept.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds

from folio_replay.errors import InputError
from folio_replay.present import units
from folio_replay.present.replay import reclaim_time
from folio_replay.present.report import Report
from folio_replay.present.tables import Table

__all__ = ["FLEET_COLUMNS", "fleet_rows", "fleet_tables", "load_fleet"]

FLEET_COLUMNS = (
    "bundle",
    "arch",
    "kernel_series",
    "release",
    "captured_model",
    "model",
    "time_ns",
    "speedup",
)
REQUIRED = ("bundle", "arch", "model", "speedup")


def _series(release: str) -> str:
    """``6.12`` of ``6.12.117+deb13-cloud-amd64``."""
    return ".".join(release.split(".")[:2])


def fleet_rows(report: Report, bundle: str) -> pd.DataFrame:
    """The rows a report adds to a fleet dataset: each model but the captured one, per arch."""
    times = reclaim_time(report)
    times = times[~times["captured"].astype(bool)]
    return pd.DataFrame(
        {
            "bundle": bundle,
            "arch": times["arch"],
            "kernel_series": _series(report.release),
            "release": report.release,
            "captured_model": report.captured_model,
            "model": times["model"],
            "time_ns": times["time_ns"],
            "speedup": times["speedup"],
        },
        columns=list(FLEET_COLUMNS),
    ).reset_index(drop=True)


def load_fleet(path: str | Path) -> pd.DataFrame:
    """Read a hive-partitioned fleet dataset (a directory of Parquet files)."""
    path = Path(path)
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else []
    if not files:
        raise InputError(path, "neither a report directory nor a fleet dataset (no Parquet files)")
    frame = ds.dataset(path, format="parquet", partitioning="hive").to_table().to_pandas()
    missing = [column for column in REQUIRED if column not in frame]
    if missing:
        raise InputError(path, f"not a fleet dataset: no column {', '.join(missing)}")
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype):
            frame[column] = frame[column].astype(str)
    return frame


def fleet_tables(fleet: pd.DataFrame) -> list[Table]:
    """Speedup quantiles per arch and model over the fleet's bundles."""
    grouped = fleet.groupby(["arch", "model"], sort=True)["speedup"]
    data = grouped.agg(
        bundles="count",
        p10=lambda s: s.quantile(0.1),
        median="median",
        p90=lambda s: s.quantile(0.9),
    ).reset_index()
    shown = pd.DataFrame(
        {
            "arch": data["arch"],
            "model": data["model"],
            "bundles": data["bundles"].astype(str),
            "p10": data["p10"].map(units.speedup),
            "median": data["median"].map(units.speedup),
            "p90": data["p90"].map(units.speedup),
        }
    )
    return [
        Table(
            "fleet_speedups",
            data,
            f"speedup over the captured kernel's model, {fleet['bundle'].nunique()} bundles",
            shown,
        )
    ]
