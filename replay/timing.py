"""Measured vs predicted MADV_PAGEOUT time, and the predicted vs measured speedup."""

from __future__ import annotations

import pandas as pd

PAGEOUT_KINDS = ("madvise_pageout", "process_madvise_pageout")


def measured_pageout_ns(episodes: pd.DataFrame) -> int:
    """Total measured enter → exit time of the capture's MADV_PAGEOUT calls."""
    rows = episodes[episodes["kind"].isin(PAGEOUT_KINDS) & episodes["duration_ns"].notna()]
    return int(rows["duration_ns"].sum())


def predicted_pageout_ns(predictions: pd.DataFrame, episodes: pd.DataFrame, model: str,
                         arch: str) -> float:
    """Predicted time of the same calls under ``model`` on ``arch`` (mean of the bounds)."""
    pageout = set(episodes[episodes["kind"].isin(PAGEOUT_KINDS)]["episode"])
    rows = predictions[(predictions["model"] == model) & (predictions["arch"] == arch)
                       & predictions["episode"].isin(pageout)]
    return float(rows["time_ns"].sum())


def speedup_row(label: str, predicted: float, measured: float) -> dict:
    """A speedup with its relative error (predicted / measured - 1)."""
    error = predicted / measured - 1 if measured else float("nan")
    return {"quantity": label, "predicted": predicted, "measured": measured, "error": error,
            "within_20pct": abs(error) <= 0.20}
