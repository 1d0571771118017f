"""Fit a cost table to measured reclaim episodes: non-negative least squares over op groups.

Each MADV_PAGEOUT episode whose reclaim the trace fully attributes to large folios (no order-0
discards) gives one equation: measured duration = sum over groups of scale × (the group's cost
under the table, summed over the episode's folios as the captured kernel's model unmaps them).
The scales minimise the squared relative errors under non-negativity, exactly (every subset of
groups solved, the best feasible kept: there are only a few groups). The fit's error is given
in-sample and leave-one-out (each episode predicted from a fit without it).

Repeated runs of the same scenarios (the lab's timings move from run to run: issue 12) are fitted
by :func:`fit_medians`: one equation per scenario and kernel, the median of its runs; each
scenario is left out in turn (on both kernels), and the speedup between the two kernels that the
fit without it predicts is compared with the measured one.
"""

from __future__ import annotations

import itertools
import tomllib
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from folio_replay.replay.models import unmap
from folio_replay.replay.predict import folio_states
from folio_replay.replay.timing import PAGEOUT_KINDS

GROUPS_TOML = Path(__file__).with_name("calibration.toml")


def op_groups() -> dict[str, list[str]]:
    """Group name → op names that the fit scales together (replay/costs/calibration.toml)."""
    return tomllib.loads(GROUPS_TOML.read_text())["groups"]


def episode_counts(analysis, table) -> list[tuple[str, int, int, Counter]]:
    """(bundle, episode, measured ns, primitive op counts) of the analysis's usable episodes.

    Op counts are the captured model's on the captured arch, tracepoint records included (the
    captures were traced), and the call's own ``pageout_call``; a folio with an unknown dirty
    page contributes the mean over its possibilities.
    """
    recon = analysis.recon
    usable = recon.episodes[
        recon.episodes["kind"].isin(PAGEOUT_KINDS)
        & recon.episodes["duration_ns"].notna()
        & (recon.episodes["small_discards"] == 0)
    ]
    rows = []
    cache: dict = {}
    for episode in usable.to_dict("records"):
        folios = recon.folios[recon.folios["episode"] == episode["episode"]]
        if folios.empty:
            continue
        counts: Counter = Counter(pageout_call=1)  # every usable episode is one call
        for folio in folios.to_dict("records"):
            states = folio_states(folio, analysis.arch)
            for state in states:
                if state not in cache:
                    cache[state] = table.primitive_counts(unmap(analysis.model, state), traced=True)
                for op, n in cache[state].items():
                    counts[op] += n / len(states)
        rows.append(
            (
                str(analysis.bundle.path),
                int(episode["episode"]),
                int(episode["duration_ns"]),
                counts,
            )
        )
    return rows


def features(counts: list[Counter], table, groups: dict[str, list[str]]) -> np.ndarray:
    """Episodes × groups matrix: each group's cost (ns) under ``table``."""
    return np.array(
        [
            [
                sum(c[op] * table.ops[op].ns for op in ops if op in table.ops)
                for ops in groups.values()
            ]
            for c in counts
        ],
        dtype=float,
    )


def present_features(
    counts: list[Counter], table, groups: dict[str, list[str]]
) -> tuple[dict[str, list[str]], np.ndarray]:
    """The groups some episode has a cost in, and their :func:`features`: a group none has
    (the swap write-out in captures without swap) cannot be fitted, and its ops keep the
    table's cost."""
    a = features(counts, table, groups).reshape(len(counts), len(groups))
    seen = [k for k in range(len(groups)) if a[:, k].any()]
    names = list(groups)
    return {names[k]: groups[names[k]] for k in seen}, a[:, seen]


def nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """min ||a x - b|| subject to x >= 0, exactly, by trying every support set of columns."""
    best, best_norm = np.zeros(a.shape[1]), float(np.linalg.norm(b))
    for size in range(1, a.shape[1] + 1):
        for support in itertools.combinations(range(a.shape[1]), size):
            sub = a[:, support]
            x_sub, *_ = np.linalg.lstsq(sub, b, rcond=None)
            if (x_sub < 0).any():
                continue
            norm = float(np.linalg.norm(sub @ x_sub - b))
            if norm < best_norm:
                best = np.zeros(a.shape[1])
                best[list(support)] = x_sub
                best_norm = norm
    return best


def relative_nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """NNLS of the relative errors (each equation divided by its measured time), so that short
    episodes count as much as long ones."""
    return nnls(a / b[:, None], np.ones_like(b))


def fit(
    episodes: list[tuple[str, int, int, Counter]], table, groups: dict[str, list[str]]
) -> tuple[dict[str, float], pd.DataFrame]:
    """Group scales and a per-episode table of measured, fitted and leave-one-out times (a
    group no episode has is not fitted: no scale)."""
    groups, a = present_features([counts for *_, counts in episodes], table, groups)
    b = np.array([measured for _, _, measured, _ in episodes], dtype=float)
    scales = relative_nnls(a, b)
    rows = []
    for i, (bundle, episode, measured, _) in enumerate(episodes):
        keep = np.arange(len(b)) != i
        held_out = float(a[i] @ relative_nnls(a[keep], b[keep]))
        fitted = float(a[i] @ scales)
        rows.append(
            {
                "bundle": bundle,
                "episode": episode,
                "measured_ns": measured,
                "fitted_ns": fitted,
                "error": fitted / measured - 1,
                "leave_one_out_ns": held_out,
                "leave_one_out_error": held_out / measured - 1,
            }
        )
    return dict(zip(groups, map(float, scales))), pd.DataFrame(rows)


def scenario_key(bundle: str) -> tuple[str, str, str]:
    """(arch, release, scenario): the last three parts of a lab bundle path
    (``<root>/<arch>/<release>/<scenario>``)."""
    arch, release, scenario = Path(bundle).parts[-3:]
    return arch, release, scenario


def median_episodes(
    episodes: list[tuple[str, int, int, Counter]],
) -> pd.DataFrame:
    """One row per (arch, release, scenario, episode number) of repeated runs: the median
    measured time, its spread and the runs, with the op counts of its first run (the same in
    every run: the folios are the same)."""
    rows: dict[tuple, dict] = {}
    for bundle, episode, measured, counts in episodes:
        key = (*scenario_key(bundle), episode)
        row = rows.setdefault(key, {"measured": [], "counts": counts, "bundles": []})
        row["measured"].append(measured)
        row["bundles"].append(bundle)
    out = []
    for (arch, release, scenario, episode), row in sorted(rows.items()):
        values = np.array(row["measured"], dtype=float)
        out.append(
            {
                "arch": arch,
                "release": release,
                "scenario": scenario,
                "episode": episode,
                "runs": len(values),
                "median_ns": float(np.median(values)),
                "min_ns": float(values.min()),
                "max_ns": float(values.max()),
                "counts": row["counts"],
                "bundles": row["bundles"],
            }
        )
    return pd.DataFrame(out)


def fit_medians(
    medians: pd.DataFrame, table, groups: dict[str, list[str]]
) -> tuple[dict[str, float], pd.DataFrame, pd.DataFrame]:
    """Group scales fitted to the median times; per row its fitted and leave-one-scenario-out
    time; per scenario the measured and predicted speedup (the older release's time over the
    newer one's, summed over the scenario's episodes) with and without the scenario (a group no
    row has is not fitted: no scale)."""
    groups, a = present_features(list(medians["counts"]), table, groups)
    b = medians["median_ns"].to_numpy(dtype=float)
    scales = relative_nnls(a, b)
    frame = medians.drop(columns=["counts", "bundles"]).copy()
    frame["fitted_ns"] = a @ scales
    frame["leave_one_out_ns"] = np.nan
    for scenario in frame["scenario"].unique():
        held = (frame["scenario"] == scenario).to_numpy()
        loo = relative_nnls(a[~held], b[~held])
        frame.loc[held, "leave_one_out_ns"] = a[held] @ loo
    frame["error"] = frame["fitted_ns"] / frame["median_ns"] - 1
    frame["leave_one_out_error"] = frame["leave_one_out_ns"] / frame["median_ns"] - 1
    speedups = []
    releases = sorted(frame["release"].unique(), key=_release_key)
    for scenario, rows in frame.groupby("scenario", sort=False):
        by_release = rows.groupby("release")[["median_ns", "fitted_ns", "leave_one_out_ns"]].sum()
        if len(by_release) < 2:
            continue
        old, new = (r for r in releases if r in by_release.index)
        measured = by_release.loc[old, "median_ns"] / by_release.loc[new, "median_ns"]
        fitted = by_release.loc[old, "fitted_ns"] / by_release.loc[new, "fitted_ns"]
        loo = by_release.loc[old, "leave_one_out_ns"] / by_release.loc[new, "leave_one_out_ns"]
        speedups.append(
            {
                "scenario": scenario,
                "old": old,
                "new": new,
                "runs": int(rows["runs"].min()),
                "measured": measured,
                "fitted": fitted,
                "error": fitted / measured - 1,
                "leave_one_out": loo,
                "leave_one_out_error": loo / measured - 1,
            }
        )
    return dict(zip(groups, map(float, scales))), frame, pd.DataFrame(speedups)


def _release_key(release: str) -> tuple[int, ...]:
    """Version order of a kernel release string (6.12.117+deb13-... < 7.2.13+...)."""
    numbers = release.split("+")[0].split("-")[0].split(".")
    return tuple(int(n) for n in numbers if n.isdigit())


def _toml_value(value: object) -> str:
    """A TOML literal for a str, bool, int or float."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def table_text(
    table,
    scales: dict[str, float],
    groups: dict[str, list[str]],
    errors: pd.DataFrame,
    emulated: bool,
    notes: list[str] | None = None,
) -> str:
    """The fitted table as TOML, in the shipped tables' format (replay/costs/*.toml);
    ``notes``: more header comment lines."""
    base = tomllib.loads(Path(table.path).read_text())
    where = (
        "QEMU TCG emulation: these are emulation costs, not hardware costs"
        if emulated
        else "this machine"
    )
    rms = float(np.sqrt(np.mean(errors["error"] ** 2)))
    loo = float(np.sqrt(np.nanmean(errors["leave_one_out_error"] ** 2)))
    lines = [
        f"# Fitted by `folio-replay calibrate` from {Path(table.path).name} and "
        f"{len(errors)} measured MADV_PAGEOUT episodes ({where}).",
        f"# Fit error: RMS {rms:.1%} in-sample, {loo:.1%} leave-one-out. Bundles:",
    ]
    lines += [f"#   {bundle}" for bundle in sorted(set(errors["bundle"]))]
    lines += [f"# {note}" for note in notes or []]
    lines += [
        "",
        "[table]",
        f"arch = {_toml_value(base['table']['arch'])}",
        f"description = {_toml_value(base['table']['description'] + ' — fitted: ' + where)}",
        f"emulation = {_toml_value(emulated)}",
    ]
    for key, entry in base["policy"].items():
        lines += ["", f"[policy.{key}]"]
        lines += [f"{field} = {_toml_value(value)}" for field, value in entry.items()]
    scale_of = {
        op: (name, scales[name]) for name, ops in groups.items() if name in scales for op in ops
    }
    for op, cost in table.ops.items():
        lines += ["", f"[ops.{op}]"]
        if op in scale_of:
            name, scale = scale_of[op]
            basis = (
                f"{cost.ns:g} ns in {Path(table.path).name} x {scale:.4g}, the fitted "
                f"scale of group {name}; {where}"
            )
            lines += [
                f"ns = {_toml_value(round(cost.ns * scale, 3))}",
                "estimate = true",
                f"basis = {_toml_value(basis)}",
            ]
        elif emulated:
            # not fitted (no episode has its group): the base table's cost, which is not an
            # emulation cost
            basis = (
                f"{cost.ns:g} ns as in {Path(table.path).name}, not fitted (no fitted episode "
                f"has it): {'estimate, ' if cost.estimate else ''}{cost.source}; {where}"
            )
            lines += [
                f"ns = {_toml_value(cost.ns)}",
                "estimate = true",
                f"basis = {_toml_value(basis)}",
            ]
        else:
            lines += [f"ns = {_toml_value(cost.ns)}"]
            lines += (
                ["estimate = true", f"basis = {_toml_value(cost.source)}"]
                if cost.estimate
                else [f"source = {_toml_value(cost.source)}"]
            )
    return "\n".join(lines) + "\n"
