"""The calibrate command's output: the fitted scales, each episode's fit and the fit's error."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from folio_replay.present import units
from folio_replay.present.tables import Table

__all__ = ["fit_tables", "rms"]


def rms(errors: pd.Series) -> float:
    """Root mean square of relative errors."""
    return float((errors**2).mean() ** 0.5)


def _bundle_name(path: str) -> str:
    """``arch/release/scenario`` of a bundle path (its last three parts)."""
    return str(Path(*Path(path).parts[-3:]))


def fit_tables(
    table_name: str, arch: str, scales: dict[str, float], errors: pd.DataFrame, emulated: bool
) -> list[Table]:
    """What was fitted to what, the scale of each op group, each episode's fit, the error."""
    note = " — QEMU TCG emulation timings, not hardware costs" if emulated else ""
    fit = pd.DataFrame(
        [{"table": table_name, "arch": arch, "episodes": len(errors), "emulated": emulated}]
    )
    scale_rows = pd.DataFrame({"group": list(scales), "scale": list(scales.values())})
    shown_episodes = pd.DataFrame(
        {
            "bundle": errors["bundle"].map(_bundle_name),
            "episode": errors["episode"].astype(str),
            "measured": errors["measured_ns"].map(units.duration),
            "fitted": errors["fitted_ns"].map(units.duration),
            "error": errors["error"].map(units.percent),
            "leave-one-out": errors["leave_one_out_ns"].map(units.duration),
            "its error": errors["leave_one_out_error"].map(units.percent),
        }
    )
    in_sample, held_out = rms(errors["error"]), rms(errors["leave_one_out_error"])
    return [
        Table(
            "fit",
            fit,
            lines=[f"fit of {table_name} ({arch}) to {len(errors)} episodes{note}"],
        ),
        Table(
            "scales",
            scale_rows,
            "scale of each op group's costs",
            pd.DataFrame(
                {"group": scale_rows["group"], "scale": [f"× {s:.4g}" for s in scale_rows["scale"]]}
            ),
        ),
        Table("episodes", errors, "measured MADV_PAGEOUT episodes and the fit", shown_episodes),
        Table(
            "error",
            pd.DataFrame([{"rms_error": in_sample, "rms_leave_one_out_error": held_out}]),
            lines=[f"RMS error {in_sample:.1%} in-sample, {held_out:.1%} leave-one-out"],
        ),
    ]
