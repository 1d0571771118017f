"""Plots of a report and of a fleet dataset, drawn by matplotlib (no pyplot: no global state).

A report gives three panels: ``split_deferred`` per folio size, predicted against observed,
each model's bounds as error bars; the predicted reclaim time per model and arch (speedups
marked); the reclaim episodes on the trace's timeline with their folio counts. A fleet dataset
gives the distribution of speedups per arch and model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from folio_replay.present import units
from folio_replay.present.replay import reclaim_time, split_deferred
from folio_replay.present.report import Report

__all__ = [
    "REPORT_PANELS",
    "counters_axes",
    "episodes_axes",
    "fleet_figure",
    "report_figure",
    "speedups_axes",
    "time_axes",
]

_MS = 1e6


def _bars(
    ax: Axes, groups: list[str], series: dict[str, tuple[list, list, list]], labels: bool = False
) -> None:
    """Grouped bars: one group per x label, one bar per series, ``(value, low, high)`` lists
    with the bounds drawn as error bars; ``labels``: each bar's value written on it."""
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for i, (label, (means, lows, highs)) in enumerate(series.items()):
        values = np.asarray(means, dtype=float)
        errors = np.array([values - np.asarray(lows), np.asarray(highs) - values])
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=label)
        if labels:
            ax.bar_label(bars, fmt="%g", fontsize="x-small")
        ax.errorbar(
            x + (i - (len(series) - 1) / 2) * width,
            values,
            yerr=np.clip(errors, 0, None),
            fmt="none",
            ecolor="black",
            capsize=3,
        )
    ax.set_xticks(x, groups)


def _nothing(ax: Axes) -> None:
    ax.text(
        0.5,
        0.5,
        "no large folio reached reclaim:\nnothing to replay through the models",
        ha="center",
        va="center",
        transform=ax.transAxes,
    )


def counters_axes(ax: Axes, report: Report) -> None:
    """split_deferred per folio size: each model's prediction (bounds as error bars) and the
    captured kernel's observed delta."""
    rows = split_deferred(report)
    arch = rows["arch"].iloc[0] if len(rows) else None
    rows = rows[rows["arch"] == arch]
    sizes = sorted(set(rows["size_kb"]))
    series: dict[str, tuple[list, list, list]] = {}
    for model, model_rows in rows.groupby("model", sort=False):
        model_rows = model_rows.set_index("size_kb").loc[sizes]
        low, high = model_rows["predicted_low"], model_rows["predicted_high"]
        label = f"{model} (captured)" if model == report.captured_model else str(model)
        series[label] = (list((low + high) / 2), list(low), list(high))
    _bars(ax, [units.size(s) for s in sizes], series, labels=True)
    observed = rows.drop_duplicates("size_kb").set_index("size_kb").reindex(sizes)["observed"]
    if observed.notna().any():
        x = np.arange(len(sizes))
        ax.hlines(observed, x - 0.45, x + 0.45, colors="black", linestyles="--", label="observed")
    if not series:
        _nothing(ax)
    ax.set_title("split_deferred per folio size: predicted vs observed")
    ax.set_xlabel("folio size")
    ax.set_ylabel("split_deferred")
    if series:
        _legend(ax)


def time_axes(ax: Axes, report: Report) -> None:
    """Predicted reclaim time per arch and model (bounds as error bars), the speedup over the
    captured kernel's model written above each bar."""
    rows = reclaim_time(report)
    archs = list(dict.fromkeys(rows["arch"]))
    series: dict[str, tuple[list, list, list]] = {}
    for model, model_rows in rows.groupby("model", sort=False):
        model_rows = model_rows.set_index("arch").loc[archs]
        label = f"{model} (captured)" if model == report.captured_model else str(model)
        series[label] = (
            list(model_rows["time_ns"] / _MS),
            list(model_rows["time_ns_low"] / _MS),
            list(model_rows["time_ns_high"] / _MS),
        )
    _bars(ax, archs, series)
    width = 0.8 / max(len(series), 1)
    for i, (model, model_rows) in enumerate(rows.groupby("model", sort=False)):
        if model == report.captured_model:
            continue
        model_rows = model_rows.set_index("arch").loc[archs]
        for j, (value, speedup) in enumerate(zip(model_rows["time_ns"], model_rows["speedup"])):
            offset = (i - (len(series) - 1) / 2) * width
            ax.annotate(
                units.speedup(speedup),
                (j + offset, value / _MS),
                ha="center",
                va="bottom",
                fontsize="x-small",
            )
    if not series:
        _nothing(ax)
    ax.set_title("predicted reclaim time per arch (cost tables, without tracing)")
    ax.set_xlabel("arch")
    ax.set_ylabel("time (ms)")
    if series:
        _legend(ax)


# Rows of the timeline with more bars than this are drawn as one span with their total.
MAX_BARS = 12


def _spans(row: str, unit: str, frame: pd.DataFrame, folios: pd.Series) -> pd.DataFrame:
    """One bar per call, or one span over all of them when there are many."""
    spans = pd.DataFrame(
        {
            "row": row,
            "label": [f"{int(n)} {unit}" for n in folios],
            "start_ns": frame["start_ns"].to_numpy(),
            "end_ns": frame["end_ns"].to_numpy(),
        }
    )
    if len(spans) <= MAX_BARS:
        return spans
    return pd.DataFrame(
        [
            {
                "row": row,
                "label": f"{int(folios.sum())} {unit} in {len(spans)} calls",
                "start_ns": spans["start_ns"].min(),
                "end_ns": spans["end_ns"].max(),
            }
        ]
    )


def _timeline_rows(report: Report) -> pd.DataFrame:
    """What happened when: reclaim episodes with their large folios, MADV_FREE calls with the
    folios they made lazyfree, partial unmaps with the folios they cut."""
    episodes, folios = report["episodes"], report["folios"]
    counts = folios.groupby("episode").size() if len(folios) else pd.Series(dtype="int64")
    frames = [
        _spans(str(kind), "folios", rows, rows["episode"].map(counts).fillna(0))
        for kind, rows in episodes.groupby("kind", sort=False)
    ]
    lazyfree, partial = report["lazyfree"], report["partial"]
    if len(lazyfree):
        frames.append(_spans("madvise_free", "folios", lazyfree, lazyfree["folios"]))
    for call, rows in partial.groupby("call", sort=False) if len(partial) else ():
        frames.append(
            _spans(
                f"{call} (partial)",
                "folios cut",
                rows.assign(end_ns=rows["start_ns"]),
                rows["partial_high"],
            )
        )
    columns = ["row", "label", "start_ns", "end_ns"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def episodes_axes(ax: Axes, report: Report) -> None:
    """Reclaim episodes on the trace's timeline (ms from the first call shown), one row per
    kind, each labelled with its large-folio count; MADV_FREE calls and partial unmaps too."""
    rows = _timeline_rows(report)
    start = rows["start_ns"].min() if len(rows) else 0
    span = ((rows["end_ns"].fillna(rows["start_ns"]).max() - start) / _MS) if len(rows) else 1.0
    kinds = list(dict.fromkeys(rows["row"]))
    for row in rows.to_dict("records"):
        begin = (row["start_ns"] - start) / _MS
        end = row["end_ns"] if pd.notna(row["end_ns"]) else row["start_ns"]
        length = max((end - row["start_ns"]) / _MS, span / 300)
        y = kinds.index(row["row"])
        ax.broken_barh([(begin, length)], (y - 0.3, 0.6))
        ax.annotate(
            row["label"], (begin + length / 2, y + 0.32), ha="center", va="bottom", fontsize="small"
        )
    ax.set_yticks(range(len(kinds)), kinds)
    ax.set_ylim(-0.6, max(len(kinds), 1) - 0.2)
    ax.set_title("reclaim episodes on the trace's timeline")
    ax.set_xlabel("time from the first call (ms)")
    ax.set_ylabel("episode kind")


# The report's panels, in order, with their captions.
REPORT_PANELS = (
    ("split_deferred per folio size", counters_axes),
    ("predicted reclaim time", time_axes),
    ("reclaim episodes", episodes_axes),
)


def report_figure(report: Report) -> Figure:
    """All panels of a report, one above the other."""
    figure = Figure(figsize=(9, 4 * len(REPORT_PANELS)), layout="constrained")
    for ax, (_, panel) in zip(figure.subplots(len(REPORT_PANELS), 1), REPORT_PANELS):
        panel(ax, report)
    figure.suptitle(f"{report.name}: {report.release}, captured model {report.captured_model}")
    return figure


def speedups_axes(ax: Axes, fleet: pd.DataFrame) -> None:
    """Distribution of the speedups of a fleet dataset: one box per arch and model, the
    bundles as points."""
    pairs = fleet[["arch", "model"]].drop_duplicates().sort_values(["arch", "model"])
    keys = list(zip(pairs["arch"], pairs["model"]))
    data = [fleet[(fleet["arch"] == a) & (fleet["model"] == m)]["speedup"] for a, m in keys]
    ax.boxplot(data, showfliers=False)
    rng = np.random.default_rng(0)
    for i, values in enumerate(data, start=1):
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(values)), values, s=12, alpha=0.7)
    ax.set_xticks(range(1, len(keys) + 1), [f"{a}\n{m}" for a, m in keys])
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_title(f"speedup over the captured kernel's model, {fleet['bundle'].nunique()} bundles")
    ax.set_xlabel("arch and model")
    ax.set_ylabel("speedup (×)")


def fleet_figure(fleet: pd.DataFrame) -> Figure:
    """The fleet's speedup distribution."""
    figure = Figure(figsize=(9, 5), layout="constrained")
    speedups_axes(figure.subplots(), fleet)
    return figure


def _legend(ax: Axes) -> None:
    """The legend in three columns above the bars, with head room so that it covers none."""
    low, high = ax.get_ylim()
    ax.set_ylim(low, high + (high - low) * 0.45)
    ax.legend(fontsize="small", loc="upper center", ncol=3)
