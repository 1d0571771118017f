"""The answer a report gives, first: per folio size, the ``split_deferred`` the captured kernel
counted against what each model predicts; per arch, the predicted reclaim time and speedup; the
captured kernel's validation in one line; then the details and the caveats.

Built from the report's tables alone (:class:`~folio_replay.present.report.Report`), reading
only the columns every report has; columns other models or reconstructions add (a folio
``kind``, a ``hypothetical`` model, a validation ``verdict`` with ``explained_by``) are used
when present.
"""

from __future__ import annotations

import pandas as pd

from folio_replay.present import units
from folio_replay.present.report import Report
from folio_replay.present.tables import Table
from folio_replay.replay.models import MODELS

__all__ = [
    "answer_lines",
    "notes",
    "reclaim_time",
    "split_deferred",
    "summary",
    "validation_line",
]


def _models(report: Report) -> list[str]:
    """The predicted models, the captured kernel's first."""
    models = report.predicted_models
    captured = report.captured_model
    return (
        [captured, *sorted(m for m in models if m != captured)]
        if captured in models
        else list(models)
    )


def _archs(report: Report) -> list[str]:
    """The priced archs, the captured one first."""
    archs = report.priced_archs
    first = report.captured_arch
    if first is None or first not in archs:
        return list(archs)
    return [first, *(a for a in archs if a != first)]


def _hypothetical(report: Report) -> set[str]:
    """Models no kernel runs (what-ifs): as the predictions mark them, else as the model
    registry does."""
    if report.marked_hypothetical is not None:
        return set(report.marked_hypothetical)
    return {name for name, model in MODELS.items() if model.hypothetical}


def _label(report: Report, model: object) -> str:
    if model == report.captured_model:
        return f"{model} (captured)"
    return f"{model} (what-if)" if model in _hypothetical(report) else str(model)


def _captured_validation(report: Report) -> pd.DataFrame:
    validation = report["validation"]
    if validation.empty:
        return validation
    return validation[validation["check"] == "captured"]


def split_deferred(report: Report) -> pd.DataFrame:
    """One row per arch, folio size and model: ``split_deferred`` from reclaim (the model's)
    plus genuine partial unmaps (the same on every kernel) against the observed delta."""
    predictions = report["predictions"]
    columns = [
        "arch",
        "size_kb",
        "model",
        "captured",
        "folios",
        "reclaim_low",
        "reclaim_high",
        "partial_low",
        "partial_high",
        "predicted_low",
        "predicted_high",
        "observed",
    ]
    if predictions.empty:
        return pd.DataFrame(columns=columns)
    reclaim = (
        predictions.groupby(["arch", "model", "size_kb"], as_index=False, sort=False)[
            ["folios", "split_deferred_low", "split_deferred_high"]
        ]
        .sum()
        .rename(
            columns={"split_deferred_low": "reclaim_low", "split_deferred_high": "reclaim_high"}
        )
    )
    checked = _captured_validation(report)
    checked = checked[checked["counter"] == "split_deferred"] if len(checked) else checked
    sizes = sorted(set(reclaim["size_kb"]) | set(checked[checked["observed"] > 0]["size_kb"]))
    grid = pd.MultiIndex.from_product(
        [_archs(report), _models(report), sizes], names=["arch", "model", "size_kb"]
    ).to_frame(index=False)
    rows = grid.merge(reclaim, how="left", on=["arch", "model", "size_kb"]).fillna(
        {"folios": 0, "reclaim_low": 0, "reclaim_high": 0}
    )
    if len(checked):
        extra = checked[["size_kb", "observed", "partial_low", "partial_high"]]
        rows = rows.merge(extra, how="left", on="size_kb")
    else:
        rows = rows.assign(observed=None, partial_low=0, partial_high=0)
    rows = rows.fillna({"partial_low": 0, "partial_high": 0})
    rows["predicted_low"] = rows["reclaim_low"] + rows["partial_low"]
    rows["predicted_high"] = rows["reclaim_high"] + rows["partial_high"]
    rows["captured"] = rows["model"] == report.captured_model
    for column in ("folios", "reclaim_low", "reclaim_high", "partial_low", "partial_high"):
        rows[column] = rows[column].astype("int64")
    rows["predicted_low"] = rows["predicted_low"].astype("int64")
    rows["predicted_high"] = rows["predicted_high"].astype("int64")
    return rows[columns].reset_index(drop=True)


def reclaim_time(report: Report) -> pd.DataFrame:
    """One row per arch and model: the predicted reclaim time of every episode (cost tables,
    without tracepoints) and the speedup over the captured kernel's model on that arch."""
    predictions = report["predictions"]
    columns = [
        "arch",
        "model",
        "captured",
        "time_ns_low",
        "time_ns_high",
        "time_ns",
        "traced_time_ns",
        "speedup",
    ]
    if predictions.empty:
        return pd.DataFrame(columns=columns)
    times = predictions.groupby(["arch", "model"], as_index=False, sort=False)[
        ["time_ns_low", "time_ns_high", "time_ns", "traced_time_ns"]
    ].sum()
    base = times[times["model"] == report.captured_model].set_index("arch")["time_ns"]
    times["speedup"] = times["arch"].map(base) / times["time_ns"]
    times["captured"] = times["model"] == report.captured_model
    order = {
        (a, m): i
        for i, (a, m) in enumerate((a, m) for a in _archs(report) for m in _models(report))
    }
    times = times.assign(
        _order=[order.get(k, len(order)) for k in zip(times["arch"], times["model"])]
    )
    return times.sort_values("_order")[columns].reset_index(drop=True)


def _split_cell(row: dict) -> str:
    return units.bounds(row["predicted_low"], row["predicted_high"])


def _split_shown(report: Report, rows: pd.DataFrame) -> pd.DataFrame:
    """Sizes down, models across; one set of rows for all archs when they agree."""
    per_arch = {
        arch: frame.drop(columns="arch").reset_index(drop=True)
        for arch, frame in rows.groupby("arch", sort=False)
    }
    frames = list(per_arch.values())
    same = all(frame.equals(frames[0]) for frame in frames[1:])
    archs = [next(iter(per_arch))] if same else list(per_arch)
    shown = []
    for arch in archs:
        arch_rows = rows[rows["arch"] == arch]
        for size_kb, size_rows in arch_rows.groupby("size_kb", sort=True):
            captured = size_rows[size_rows["captured"]]
            line = {} if same else {"arch": arch}
            line["size"] = units.size(size_kb)
            line["folios"] = str(int(captured["folios"].iloc[0] if len(captured) else 0))
            observed = size_rows["observed"].iloc[0]
            if pd.notna(observed):
                line["observed"] = str(int(observed))
            for model_row in size_rows.to_dict("records"):
                line[_label(report, model_row["model"])] = _split_cell(model_row)
            shown.append(line)
    return pd.DataFrame(shown)


def _time_shown(report: Report, rows: pd.DataFrame) -> pd.DataFrame:
    """Archs down, models across: time (and × over the captured kernel's model)."""
    shown = []
    for arch, arch_rows in rows.groupby("arch", sort=False):
        line = {"arch": arch}
        for row in arch_rows.to_dict("records"):
            cell = units.duration_range(row["time_ns_low"], row["time_ns_high"])
            if not row["captured"]:
                cell += f" ({units.speedup(row['speedup'])})"
            line[_label(report, row["model"])] = cell
        shown.append(line)
    return pd.DataFrame(shown)


def _grouped(outcomes: dict[str, str]) -> list[tuple[str, list[str]]]:
    """Models with the same outcome text together, in order."""
    groups: dict[str, list[str]] = {}
    for model, text in outcomes.items():
        groups.setdefault(text, []).append(model)
    return [(text, models) for text, models in groups.items()]


def _split_answer(report: Report, rows: pd.DataFrame) -> list[str]:
    """``split_deferred, captured kernel → batched, batched-partial: 64K 2048 → 0``, one line
    per outcome; sizes at 0 on both sides are left out (``0 at every size`` if all are)."""
    arch = _archs(report)[0]
    rows = rows[rows["arch"] == arch]
    captured = rows[rows["captured"]].set_index("size_kb")
    outcomes = {}
    for model, model_rows in rows[~rows["captured"]].groupby("model", sort=False):
        parts = []
        for row in model_rows.sort_values("size_kb").to_dict("records"):
            size_kb = row["size_kb"]
            before = row["observed"]
            if pd.isna(before):
                before = units.bounds(*captured.loc[size_kb, ["predicted_low", "predicted_high"]])
            else:
                before = str(int(before))
            after = units.bounds(row["predicted_low"], row["predicted_high"])
            if (before, after) != ("0", "0"):
                parts.append(f"{units.size(size_kb)} {before} → {after}")
        outcomes[_label(report, model)] = ", ".join(parts) or "0 at every size"
    before = "captured kernel" if rows["observed"].notna().any() else report.captured_model
    return [
        f"split_deferred, {before} → {', '.join(models)}: {text}"
        for text, models in _grouped(outcomes)
    ]


def _time_answer(report: Report, rows: pd.DataFrame) -> list[str]:
    """``reclaim time with batched: x86 18.3 ms → 12.6 ms (1.45×), ...`` per outcome."""
    captured = rows[rows["captured"]].set_index("arch")
    outcomes = {}
    for model, model_rows in rows[~rows["captured"]].groupby("model", sort=False):
        parts = [
            f"{row['arch']} {units.duration(captured.loc[row['arch'], 'time_ns'])} → "
            f"{units.duration(row['time_ns'])} ({units.speedup(row['speedup'])})"
            for row in model_rows.to_dict("records")
            if row["arch"] in captured.index
        ]
        outcomes[_label(report, model)] = ", ".join(parts)
    return [
        f"predicted reclaim time, {report.captured_model} → {', '.join(models)}: {text}"
        for text, models in _grouped(outcomes)
    ]


def _counter_name(row: dict) -> str:
    return f"{row['counter']} {units.size(row['size_kb'])}" if row["size_kb"] else row["counter"]


def validation_line(validation: pd.DataFrame, model: str) -> str:
    """``validation (unbatched): 11/11 counters match``, the others named."""
    if validation.empty:
        return f"validation ({model}): no stats in the bundle, nothing to check"
    records = validation.to_dict("records")
    if "verdict" in validation:
        verdicts = [str(r["verdict"]) for r in records]
    else:
        verdicts = ["match" if bool(r["match"]) else "mismatch" for r in records]
    line = f"validation ({model}): {verdicts.count('match')}/{len(records)} counters match"
    explained = [
        f"{_counter_name(r)} ({r.get('explained_by') or 'explained'})"
        for r, v in zip(records, verdicts)
        if v == "explained"
    ]
    mismatched = [
        f"{_counter_name(r)} observed {int(r['observed'])}, predicted "
        f"{units.bounds(r['predicted_low'], r['predicted_high'])}"
        for r, v in zip(records, verdicts)
        if v not in ("match", "explained")
    ]
    if explained:
        line += "; explained: " + "; ".join(explained)
    if mismatched:
        line += "; MISMATCH: " + "; ".join(mismatched)
    return line


def _timing_note(report: Report) -> str | None:
    """What the measured MADV_PAGEOUT time says, or why it cannot be compared."""
    timing = report["timing"]
    if timing.empty or "measured_ns" not in timing:
        return None
    measured = timing[timing["measured_ns"].notna()]
    if measured.empty:
        return None
    row = measured.iloc[0]
    if not row["measured_ns"]:
        return _untimed_note(report)
    if report.emulated:
        return (
            f"times: QEMU TCG emulation timings; the measured MADV_PAGEOUT "
            f"({units.duration(row['measured_ns'])}) is emulation time, not compared with the "
            "predictions (priced with hardware cost tables)"
        )
    return (
        f"measured MADV_PAGEOUT {units.duration(row['measured_ns'])}; {row['model']} on "
        f"{row['arch']} predicts {units.duration(row['predicted_ns'])} with the tracepoints "
        f"the capture wrote ({units.percent(row['error'])})"
    )


def _untimed_note(report: Report) -> str:
    """Why a capture without MADV_PAGEOUT calls has no measured time to compare: the windows
    of its other paths also hold LRU scanning and the reclaim calls' own work, which the
    models do not price."""
    episodes = report["episodes"]
    windows = ", ".join(
        f"{kind} {units.duration(ns)}"
        for kind, ns in episodes.groupby("kind", sort=True)["duration_ns"].sum().items()
        if ns > 0
    )
    return (
        "no MADV_PAGEOUT call in the capture: no measured time is compared with the "
        "predictions, which price the unmap of the folios only"
        + (
            f" (the reclaim windows measured: {windows}; they also hold LRU scanning and each "
            "reclaim call's own work)"
            if windows
            else ""
        )
    )


def notes(report: Report) -> list[str]:
    """Caveats and context, one short sentence each."""
    out = []
    if report.lost_events:
        out.append(f"the trace lost {report.lost_events} events: counts may fall short")
    if report["predictions"].empty:
        out.append("no large folio reached reclaim: nothing to replay through the models")
    timing = _timing_note(report)
    if timing:
        out.append(timing)
    partial = report["partial"]
    if len(partial) and int(partial["partial_high"].sum()):
        out.append(
            f"{units.bounds(partial['partial_low'].sum(), partial['partial_high'].sum())} large "
            "folios partially unmapped (munmap/MADV_DONTNEED): they count in split_deferred on "
            "every kernel"
        )
    episodes = report["episodes"]
    kept = int(episodes["nr_ref_keep"].sum()) if "nr_ref_keep" in episodes else 0
    if kept:
        out.append(
            f"reclaim kept {kept} pages for their references (nr_ref_keep): met and never "
            "unmapped, alike under every model"
        )
    for model in sorted(_hypothetical(report)):
        out.append(f"{model} is a what-if: no kernel runs it")
    checked = _captured_validation(report)
    if len(checked) and not report.emulated and not checked["match"].astype(bool).all():
        out.append(
            "a capture outside the lab: vmstat and mTHP counters are system-wide, so other "
            "processes' reclaim during the capture counts in them"
        )
    if report.captured_model:
        out.append(f"captured model {report.captured_model}: {report.model_evidence}")
    out.append(
        "times priced with the cost tables, without tracing; × = speedup over the "
        "captured kernel's model on the same arch"
    )
    return out


def answer_lines(report: Report, split: pd.DataFrame, times: pd.DataFrame, name: str) -> list[str]:
    """The first lines: what was captured, then the answer, then the validation."""
    episodes = report["episodes"]
    arch = report.captured_arch or "arch unknown"
    where = f"{arch}, QEMU TCG" if report.emulated else arch
    plural = "" if len(episodes) == 1 else "s"
    lines = [
        f"{name}: {report.release or 'release unknown'} ({where}), captured kernel runs "
        f"{report.captured_model}; {len(episodes)} reclaim episode{plural}, "
        f"{report.rows('folios')} large-folio unmaps"
    ]
    if len(split):
        lines += _split_answer(report, split)
    if len(times):
        lines += _time_answer(report, times)
    lines.append(validation_line(_captured_validation(report), report.captured_model))
    return lines


def summary(report: Report, name: str | None = None) -> list[Table]:
    """The replay command's output: the answer, its tables, the report's own tables for
    scripts, and notes; ``name``: what the report is of (default: its directory's name)."""
    split, times = split_deferred(report), reclaim_time(report)
    answer = answer_lines(report, split, times, name or report.name)
    note_lines = notes(report)
    capture = pd.DataFrame(
        [
            {
                "report": str(report.path),
                "kernel": report.kernel,
                "release": report.release,
                "arch": report.captured_arch,
                "captured_model": report.captured_model,
                "model_evidence": report.model_evidence,
                "episodes": len(report["episodes"]),
                "folio_unmaps": report.rows("folios"),
                "lost_events": report.lost_events,
                "emulated": report.emulated,
            }
        ]
    )
    return [
        Table("answer", pd.DataFrame({"text": answer}), lines=answer),
        Table(
            "split_deferred",
            split,
            "split_deferred per folio size: observed on the captured kernel, predicted per "
            "model (reclaim + genuine partial unmaps)",
            _split_shown(report, split) if len(split) else None,
        ),
        Table(
            "reclaim_time",
            times,
            "predicted reclaim time per arch (× speedup over the captured kernel's model)",
            _time_shown(report, times) if len(times) else None,
        ),
        Table("capture", capture),
        Table("validation", report["validation"]),
        Table("timing", report["timing"]),
        Table(
            "notes",
            pd.DataFrame({"note": note_lines}),
            "notes",
            lines=[f"- {line}" for line in note_lines],
        ),
    ]
