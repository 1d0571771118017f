#!/usr/bin/env python3
"""Fit the emulation cost tables (replay/costs/<arch>-tcg.toml) to repeated lab runs.

``.venv/bin/python bench/costs/emulation.py --root /work/lab-timing [--arch aarch64]...
[--write]`` reads the lab bundles of bench/costs/lab_rounds.sh (``ROOT/rN/<arch>/<release>/
<scenario>/``), counts each MADV_PAGEOUT's ops under the captured kernel's model
(replay/costs/calibrate.py episode_counts, records included: the lab traces), takes per
scenario and kernel the median time of the runs, fits one scale per op group
(replay/costs/calibration.toml) by non-negative least squares of relative errors, and leaves
each scenario out in turn: the fit without it predicts its time on both kernels and so the
speedup, compared with the measured (median) speedup. It writes
``bench/costs/data/emulation-<arch>.csv`` (the medians with their op counts: ``--from-data``
refits from it without the bundles) and, with ``--write``, the table.

The relative weights inside a group are those of the base table: the arch's shipped table for
arm64 and riscv, bench/costs/x86-estimates.toml for x86 (the measured x86 table leaves ops at
0). These are emulation costs (QEMU TCG on this shared machine), never hardware costs.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from folio_replay.replay.analysis import analyse
from folio_replay.replay.archs import ARCH_OF_MACHINE
from folio_replay.replay.costs.calibrate import (
    episode_counts,
    fit_medians,
    median_episodes,
    op_groups,
    table_text,
)
from folio_replay.replay.costs.tables import COSTS_DIR, load_table

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
BASE = {
    "x86": HERE / "x86-estimates.toml",
    "arm64": COSTS_DIR / "arm64.toml",
    "riscv": COSTS_DIR / "riscv.toml",
}


def bundles_of(root: Path, machine: str) -> list[Path]:
    return sorted(p.parent for p in root.glob(f"r*/{machine}/*/*/meta.json"))


def medians_from_bundles(root: Path, machine: str) -> pd.DataFrame:
    arch = ARCH_OF_MACHINE[machine]
    table = load_table(BASE[arch])
    episodes = []
    for bundle in bundles_of(root, machine):
        analysis = analyse(bundle, archs=[], costs=str(BASE[arch]))
        episodes += episode_counts(analysis, table)
    return median_episodes(episodes)


def save(medians: pd.DataFrame, path: Path) -> None:
    frame = medians.copy()
    frame["counts"] = frame["counts"].map(lambda c: json.dumps(dict(sorted(c.items()))))
    frame["bundles"] = frame["bundles"].map(lambda b: ";".join(str(p) for p in b))
    frame.to_csv(path, index=False)


def load(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    frame["counts"] = frame["counts"].map(lambda s: Counter(json.loads(s)))
    frame["bundles"] = frame["bundles"].map(lambda s: s.split(";"))
    return frame


def fit_arch(medians: pd.DataFrame, arch: str) -> dict:
    table = load_table(BASE[arch])
    groups = op_groups()
    scales, rows, speedups = fit_medians(medians, table, groups)
    return {"table": table, "groups": groups, "scales": scales, "rows": rows, "speedups": speedups}


def notes(result: dict, machine: str) -> list[str]:
    rows, speedups = result["rows"], result["speedups"]
    runs = int(rows["runs"].min())
    out = [
        f"QEMU TCG emulation of {machine} on this shared 2-vCPU machine "
        f"(bench/costs/lab_rounds.sh): "
        f"{runs}+ runs per scenario and kernel, medians fitted; leave-one-scenario-out speedups:",
    ]
    for row in speedups.to_dict("records"):
        out.append(
            f"  {row['scenario']}: {row['old']} -> {row['new']} measured {row['measured']:.2f}x, "
            f"predicted without it {row['leave_one_out']:.2f}x ({row['leave_one_out_error']:+.1%})"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("/work/lab-timing"))
    parser.add_argument("--arch", action="append", choices=["x86_64", "aarch64", "riscv64"])
    parser.add_argument("--from-data", action="store_true", help="refit from data/emulation-*.csv")
    parser.add_argument("--write", action="store_true", help="write replay/costs/<arch>-tcg.toml")
    args = parser.parse_args()
    for machine in args.arch or ["x86_64", "aarch64", "riscv64"]:
        arch = ARCH_OF_MACHINE[machine]
        data = DATA / f"emulation-{arch}.csv"
        medians = load(data) if args.from_data else medians_from_bundles(args.root, machine)
        if medians.empty:
            print(f"{machine}: no bundles")
            continue
        if not args.from_data:
            save(medians, data)
        result = fit_arch(medians, arch)
        rows, speedups = result["rows"], result["speedups"]
        print(f"{machine}: scales { ({k: round(v, 3) for k, v in result['scales'].items()}) }")
        print(rows.drop(columns=["arch"]).round(3).to_string())
        print(speedups.round(3).to_string())
        loo = speedups["leave_one_out_error"]
        print(
            f"leave-one-scenario-out speedup error: RMS {np.sqrt(np.mean(loo**2)):.1%}, "
            f"max {loo.abs().max():.1%}"
        )
        if args.write:
            errors = rows.assign(
                bundle=rows["arch"] + "/" + rows["release"] + "/" + rows["scenario"]
            )
            text = table_text(
                result["table"],
                result["scales"],
                result["groups"],
                errors,
                True,
                notes(result, machine),
            )
            out = COSTS_DIR / f"{arch}-tcg.toml"
            out.write_text(text)
            print(f"-> {out}")


if __name__ == "__main__":
    main()
