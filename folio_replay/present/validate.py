"""The validate command's output: each bundle's captured model, every counter checked, the
split_deferred attribution and the cross-kernel speedups, as :class:`Table` s."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from folio_replay.present import units
from folio_replay.present.tables import Table

if TYPE_CHECKING:
    from folio_replay.replay.analysis import Analysis

__all__ = [
    "attribution_table",
    "bundle_table",
    "mismatches",
    "result_table",
    "speedup_table",
    "validation_table",
]


def bundle_table(analyses: dict[str, Analysis]) -> Table:
    """One row per bundle: its kernel and the model it runs, and why."""
    data = pd.DataFrame(
        [
            {
                "bundle": bundle,
                "release": analysis.release,
                "model": analysis.model,
                "model_evidence": analysis.model_evidence,
                "lost_events": analysis.trace.lost_events,
                "emulated": analysis.emulated,
            }
            for bundle, analysis in analyses.items()
        ]
    )
    lines = [
        f"{row['bundle']}: {row['release']} → {row['model']} ({row['model_evidence']})"
        for row in data.to_dict("records")
    ]
    return Table("bundles", data, lines=lines)


def _verdicts(validation: pd.DataFrame) -> pd.Series:
    """match / explained / mismatch per row (the ``verdict`` column where there is one)."""
    if "verdict" in validation:
        return validation["verdict"].astype(str)
    return validation["match"].astype(bool).map({True: "match", False: "mismatch"})


def mismatches(validation: pd.DataFrame) -> int:
    """Rows whose prediction does not hold (explained ones do)."""
    return int((_verdicts(validation) == "mismatch").sum()) if len(validation) else 0


def validation_table(validation: pd.DataFrame) -> Table:
    """Every counter checked: observed against the predicted bounds."""
    shown = pd.DataFrame(
        {
            "check": validation["check"],
            "counter": validation["counter"],
            "size": [units.size(s) if s else "" for s in validation["size_kb"]],
            "model": validation["model"],
            "observed": validation["observed"].astype("int64").astype(str),
            "predicted": [
                units.bounds(low, high)
                for low, high in zip(validation["predicted_low"], validation["predicted_high"])
            ],
            "verdict": _verdicts(validation)
            .map({"match": "✓ match"})
            .fillna(_verdicts(validation)),
        }
    )
    if "explained_by" in validation:
        shown["explained by"] = validation["explained_by"].fillna("")
    return Table("validation", validation, "counters: observed against predicted", shown)


def attribution_table(shares: pd.DataFrame) -> Table:
    """Observed split_deferred per size: lazyfree reclaim vs genuine partial unmaps."""
    shown = pd.DataFrame(
        {
            "model": shares["model"],
            "size": [units.size(s) for s in shares["size_kb"]],
            "observed": shares["observed"].astype(str),
            "reclaim": [
                units.bounds(a, b) for a, b in zip(shares["reclaim_low"], shares["reclaim_high"])
            ],
            "partial unmaps": [
                units.bounds(a, b) for a, b in zip(shares["partial_low"], shares["partial_high"])
            ],
        }
    )
    return Table(
        "attribution",
        shares,
        "split_deferred attribution (lazyfree reclaim vs genuine partial unmaps)",
        shown if len(shares) else None,
    )


def speedup_table(speedups: pd.DataFrame) -> Table:
    """Predicted against measured MADV_PAGEOUT speedup between the two captures."""
    shown = pd.DataFrame(
        {
            "quantity": speedups["quantity"],
            "predicted": speedups["predicted"].map(units.speedup),
            "measured": speedups["measured"].map(units.speedup),
            "error": speedups["error"].map(units.percent),
        }
    )
    lines = (
        ["times: QEMU TCG emulation timings (not hardware costs)"]
        if bool(speedups["emulated"].any())
        else []
    )
    return Table("speedups", speedups, "MADV_PAGEOUT speedup, predicted and measured", shown, lines)


def result_table(validation: pd.DataFrame) -> Table:
    """The last line: how many counters match (explained ones counted apart)."""
    verdicts = _verdicts(validation)
    matched, explained = int((verdicts == "match").sum()), int((verdicts == "explained").sum())
    line = f"{matched}/{len(validation)} counters match"
    if explained:
        line = f"{explained} explained, {line}"
    data = pd.DataFrame(
        [
            {
                "counters": len(validation),
                "match": matched,
                "explained": explained,
                "mismatch": mismatches(validation),
            }
        ]
    )
    return Table("result", data, lines=[line])
