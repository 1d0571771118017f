"""Published hardware measurements against folio-replay's predictions (issue 12 item 3).

:data:`FIGURES` (``replay/costs/published.toml``) lists each published figure with the workload
that re-creates it here (a lab or host capture) and the models of the two kernels it compares;
:func:`published_table` predicts each speedup by replaying the capture through both models,
priced with the shipped cost table of the arch the figure was measured on (and, for arm64 and
riscv, with the emulation table too; and with the shipped table of the machine's class, such as
``arm64-server.toml``, where the figure states it), untraced: the published times are not
taken under tracing. Nothing in any table is fitted to these figures.
"""

from __future__ import annotations

import tomllib
from functools import cache

import pandas as pd
from folio_replay.replay.costs.tables import COSTS_DIR
from folio_replay.replay.timing import predicted_pageout_ns

ROOT = COSTS_DIR.parent.parent
FIGURES = tomllib.loads((COSTS_DIR / "published.toml").read_text())["figure"]
EMULATION = {"x86": "x86-tcg.toml", "arm64": "arm64-tcg.toml", "riscv": "riscv-tcg.toml"}


@cache
def _times(bundle: str, arch: str, models: tuple[str, ...], costs: str | None) -> dict:
    """Untraced predicted MADV_PAGEOUT time per model of one capture on ``arch``."""
    import folio_replay

    analysis = folio_replay.analyse(ROOT / bundle, models=list(models), archs=[arch], costs=costs)
    times = predicted_pageout_ns(analysis.predictions, analysis.recon.episodes, "time_ns")
    return {model: times.get((model, arch), 0.0) for model in models}


def predicted_speedup(figure: dict, capture: str, costs: str | None = None) -> float:
    """The figure's speedup (old model's time over the new one's) predicted from one capture
    (``before`` or ``after``) with the shipped table of its arch, or ``costs``."""
    old, new = figure["models"]
    times = _times(figure["lab"][capture], figure["arch"], (old, new), costs)
    return times[old] / times[new]


def published_table(emulation: bool = True) -> pd.DataFrame:
    """One row per figure: measured and predicted speedups and the relative error."""
    rows = []
    for figure in FIGURES:
        measured = figure["before_s"] / figure["after_s"]
        before = predicted_speedup(figure, "before")
        after = predicted_speedup(figure, "after")
        error = before / measured - 1
        row = {
            "figure": figure["id"],
            "arch": figure["arch"],
            "machine": figure["machine"],
            "measured": measured,
            "lower_bound": bool(figure.get("lower_bound", False)),
            "predicted": before,
            "predicted_from_after": after,
            "error": error,
            "within_20pct": (before >= 0.8 * measured)
            if figure.get("lower_bound")
            else abs(error) <= 0.20,
        }
        if "machine_table" in figure:
            by_class = predicted_speedup(figure, "before", str(COSTS_DIR / figure["machine_table"]))
            row["machine_table"] = figure["machine_table"]
            row["predicted_machine"] = by_class
            row["error_machine"] = by_class / measured - 1
        emulated = COSTS_DIR / EMULATION[figure["arch"]]
        if emulation and figure["arch"] != "x86" and emulated.exists():
            tcg = predicted_speedup(figure, "before", str(emulated))
            row["predicted_emulation"] = tcg
            row["error_emulation"] = tcg / measured - 1
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    """The README's table of the figures."""
    out = [
        "| figure | measured on | arch | measured | predicted (hardware table) | error | "
        "predicted (emulation table) | error |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in table.to_dict("records"):
        measured = f"{'≥ ' if row['lower_bound'] else ''}{row['measured']:.2f}×"
        tcg = row.get("predicted_emulation")
        has_tcg = tcg is not None and not pd.isna(tcg)
        out.append(
            f"| `{row['figure']}` | {row['machine']} | {row['arch']} | {measured} | "
            f"{row['predicted']:.2f}× | {row['error']:+.0%}"
            f"{'' if row['within_20pct'] else ' ✗'} | "
            + (f"{tcg:.2f}× | {row['error_emulation']:+.0%} |" if has_tcg else "– | – |")
        )
    for row in table.to_dict("records"):
        by_class = row.get("predicted_machine")
        if by_class is not None and not pd.isna(by_class):
            out.append(
                f"\n`{row['figure']}` with `{row['machine_table']}` (the table of its machine's "
                f"class): {by_class:.2f}× ({row['error_machine']:+.0%})."
            )
    return "\n".join(out)
