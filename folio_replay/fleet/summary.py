"""A fleet's answer: per arch, kernel series and model over the dataset's bundles, the folios,
split_deferred and predicted reclaim time, and the distribution of the per-bundle speedups;
with the run's bundles that need a look (errors, validation mismatches, warnings)."""

from __future__ import annotations

import pandas as pd

from folio_replay.present import units
from folio_replay.present.tables import Table

__all__ = ["QUANTILES", "SUMMARY_COLUMNS", "fleet_tables", "summarise"]

QUANTILES = (0.5, 0.9, 0.99)
WARNING_CHARS = 60  # of a bundle's first warning, shown
KEYS = ["arch", "kernel_series", "model"]
SUMMARY_COLUMNS = [
    *KEYS,
    "hypothetical",
    "bundles",
    "captured",  # bundles whose kernel runs this model
    "folios",
    "split_deferred_low",
    "split_deferred_high",
    "time_ns",
    *(f"speedup_p{round(q * 100)}" for q in QUANTILES),
]


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Per arch, kernel series and model (:data:`SUMMARY_COLUMNS`; the captured kernels'
    models first): bundles, folios, split_deferred bounds and predicted time summed over the
    bundles, and the quantiles of the bundles' speedups (the captured kernel's model's time
    over the model's)."""
    if rows.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    grouped = rows.groupby(KEYS, sort=True)
    table = grouped.agg(
        hypothetical=("hypothetical", "any"),
        bundles=("bundle_id", "nunique"),
        captured=("captured", "sum"),
        folios=("folios", "sum"),
        split_deferred_low=("split_deferred_low", "sum"),
        split_deferred_high=("split_deferred_high", "sum"),
        time_ns=("time_ns", "sum"),
    )
    for q in QUANTILES:
        table[f"speedup_p{round(q * 100)}"] = grouped["speedup"].quantile(q)
    table = table.reset_index()
    order = table.assign(
        series=table["kernel_series"].map(_version), later=table["captured"] < table["bundles"]
    ).sort_values(["arch", "series", "later", "model"], kind="stable")
    return table.loc[order.index, SUMMARY_COLUMNS].reset_index(drop=True)


def _version(series: str) -> tuple[int, ...]:
    """``(6, 12)`` of ``6.12`` (sorts 6.9 before 6.12); unknown series last."""
    parts = series.split(".")
    return tuple(map(int, parts)) if all(part.isdigit() for part in parts) else (1 << 30,)


def _model(row: dict) -> str:
    """The model as people read it: ``(captured)`` when every bundle's kernel runs it,
    ``(captured by N)`` when some do, ``(what-if)`` for a model no kernel runs."""
    if row["captured"] == row["bundles"]:
        return f"{row['model']} (captured)"
    if row["captured"]:
        return f"{row['model']} (captured by {row['captured']})"
    return f"{row['model']} (what-if)" if row["hypothetical"] else row["model"]


def _summary_table(summary: pd.DataFrame, bundles: int, dataset: str) -> Table:
    shown = pd.DataFrame(
        [
            {
                "arch": row["arch"],
                "kernel": row["kernel_series"],
                "model": _model(row),
                "bundles": str(row["bundles"]),
                "folios": str(row["folios"]),
                "split_deferred": units.bounds(
                    row["split_deferred_low"], row["split_deferred_high"]
                ),
                "time": units.duration(row["time_ns"]),
                **{
                    f"p{round(q * 100)}": units.speedup(row[f"speedup_p{round(q * 100)}"])
                    for q in QUANTILES
                },
            }
            for row in summary.to_dict("records")
        ]
    )
    return Table(
        "fleet_summary",
        summary,
        f"fleet {dataset}, {bundles} bundles: sums over the bundles, and the speedup of each "
        "bundle (its captured kernel's model's predicted reclaim time over the model's) at "
        "p50/p90/p99",
        shown,
    )


def _within(text: str, bundle: str) -> str:
    """An error without the bundle's path it starts with (shown next to it)."""
    for prefix in (f"{bundle}/", f"{bundle}: "):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


def _warnings(warnings: list[str], bundle: str) -> str:
    """``N: the first one…`` (all of them in the JSON)."""
    if not warnings:
        return ""
    first = " ".join(_within(warnings[0], bundle).split())
    return f"{len(warnings)}: {first[:WARNING_CHARS]}{'…' if len(first) > WARNING_CHARS else ''}"


def _status_table(status: pd.DataFrame, dataset: str) -> Table:
    """The run's bundles; shown: those with an error, a validation mismatch or warnings."""
    ok = status["status"] == "ok"
    skipped = status["run"] == "skipped"
    attention = status[
        ~ok | (ok & (status["validation"] != "match")) | status["warnings"].map(bool)
    ]
    shown = pd.DataFrame(
        {
            "bundle": attention["bundle"],
            "status": [_within(s, b) for s, b in zip(attention["status"], attention["bundle"])],
            "validation": attention["validation"].fillna("-"),
            "warnings": [
                _warnings(w, b) for w, b in zip(attention["warnings"], attention["bundle"])
            ],
        }
    )
    empty = int((ok & (status["rows"] == 0)).sum())
    line = (
        f"{len(status)} bundles: {int((ok & ~skipped).sum())} replayed, "
        f"{int((ok & skipped).sum())} already in {dataset} (skipped), "
        f"{int((~ok).sum())} errors"
        + (f"; {empty} ok without rows (no large folio reached reclaim)" if empty else "")
    )
    return Table("fleet_status", status, "bundles to look at" if len(shown) else "", shown, [line])


def fleet_tables(rows: pd.DataFrame, status: pd.DataFrame, dataset: str) -> list[Table]:
    """The run's ``status`` (this run's bundles) and the summary of ``rows`` (the dataset's)."""
    return [
        _status_table(status, dataset),
        _summary_table(summarise(rows), rows["bundle_id"].nunique(), dataset),
    ]
