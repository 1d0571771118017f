"""Helpers shared by the presentation tests: the models a real report holds, as its summary
names them (other engineers add models: the tests take them from the report)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from folio_replay.replay.models import MODELS


def captured_model(report: Path) -> str:
    """The captured kernel's model, from the report's metadata."""
    meta = pq.read_schema(report / "predictions.parquet").metadata
    return meta[b"folio_replay.captured_model"].decode().split(":", 1)[0]


def other_models(report: Path) -> list[str]:
    """The models other than the captured one, sorted, labelled ``(what-if)`` where the
    predictions mark them hypothetical."""
    predictions = pd.read_parquet(report / "predictions.parquet")
    captured = captured_model(report)
    hypothetical = (
        set(predictions.loc[predictions["hypothetical"].astype(bool), "model"])
        if "hypothetical" in predictions
        else {name for name, model in MODELS.items() if model.hypothetical}
    )
    return [
        f"{model} (what-if)" if model in hypothetical else model
        for model in sorted(set(predictions["model"]) - {captured})
    ]


def pageout_ms(report: Path, arch: str, model: str) -> float:
    """The predicted reclaim time of ``model`` on ``arch``, summed over the report's
    predictions, in ms."""
    predictions = pd.read_parquet(report / "predictions.parquet")
    rows = predictions[(predictions["model"] == model) & (predictions["arch"] == arch)]
    return float(rows["time_ns"].sum()) / 1e6


def speedup_label(report: Path, arch: str, model: str) -> str:
    """``model``'s speedup over the captured kernel's on ``arch`` as the summaries print it."""
    captured = pageout_ms(report, arch, captured_model(report))
    return f"{captured / pageout_ms(report, arch, model):.2f}×"
