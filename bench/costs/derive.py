#!/usr/bin/env python3
"""Derive the x86 costs of replay/costs/x86.toml from the committed measurements of this
machine (bench/costs/data/*.csv, made by measure.py + summarize.py), step by step, each with
its leave-one-out error.

``.venv/bin/python bench/costs/derive.py [--data DIR] [--json OUT] [--table OUT --machine TEXT]``
prints the derivation (``--table``: also writes it as a table that extends x86.toml, as
x86-xeon.toml was written from data/xeon-2026-12-08/); ``derive()`` returns it
(tests/test_hardware_costs.py checks the shipped tables against it).

1. ``trace_event``: each pageout scenario measured twice, with the capture's events and with
   the madvise syscall events only; (10th percentile traced - 10th percentile untraced) / the
   records inside a traced call, per pair; the median of the pairs (10th percentiles: the calls
   least disturbed by the other jobs of this 2-vCPU VM; the untraced calls cannot be cleaned
   gap by gap, having one gap).
2. The flush primitives, from the ``zap-N`` scenarios (MADV_DONTNEED of N 4 KiB pages, one
   flush_tlb_mm_range() per call, 1000 calls each): non-negative least squares of the median
   call time
   ``T(N) = c0 + z*N + [1 <= N <= 33] (flush_partial + invlpg*N) + [N > 33] flush_full
   + [N >= 1] trace_event`` (one tlb_flush record per flushing call; ``zap-0`` touches
   nothing, so its call clears and flushes nothing). Leave-one-out: each N predicted from a
   fit without it. flush_partial and flush_full (the fixed cost of a call that flushes page by
   page, and of one that rewrites CR3) go to the table; the INVLPG slope here (pages just
   touched, or with ``zapcold-N`` the TLB emptied of them first) is a cross-check of step 3's.
3. The reclaim software costs, from the pageout scenarios traced with the capture's events:
   the robust median MADV_PAGEOUT time (bench/costs/summarize.py) minus the flush primitives
   (1, 2) and the records measured inside the call times ``trace_event`` (1), fitted by
   non-negative least squares of relative errors over op groups (GROUPS: one scale per group
   multiplying the relative weights WEIGHTS, which are the estimates of the table before these
   measurements; ``invlpg`` is its own group, in ns: the INVLPG of cold memory as reclaim meets
   it, and so is ``pageout_call``, the call's own work, which the single-folio calls
   ``call-16k``/``-64k``/``-256k`` isolate), the ops counted by replaying each call's large
   folios (data/folios.csv) through the model the 6.18.44 kernel's traces fit
   (batched-partial-pmd-split: lazyfree PMD THPs split, then batched) with the shipped x86
   policy, each folio's flush as the call's trace shows it (``mm_cpus``: a local flush,
   deferred to the batch with IPIs to the CPU that has the mm loaded, or none: the ``pm-*``
   calls, process_madvise() of a sleeping process, flush nothing). Leave-one-out: each
   scenario predicted (whole time, flushes and records included) from a fit without it.
   Scenarios outside the fit (CHECKS) are predicted from the full fit: their error is a check.
4. A cross-check of the page group on the PMD THP calls, from perf samples of the lazy-pmd and
   redirty-pmd calls (perf_pageout.sh, data/perf-pageout.csv): the per-page work of a PMD split
   is __split_huge_pmd_locked()'s inclusive time per THP without its pmdp_invalidate() (the
   flush, priced apart), folio_remove_rmap_pmd() (rmap_remove) and
   pgtable_trans_huge_withdraw() (pmd_split's fixed part), over 512 pages (the mean of the two
   kinds), against the fitted ``pmd_split_page`` plus ``pmd_split`` over 512 pages. Not used
   in the fit (on the Intel Xeon measured first, fixing pmd_split_page at the perf value made
   the leave-one-out RMS 21% instead of 8%: the measurements fix a group's total, not its split
   among ops).

The scenarios a data directory lacks (measurements made before they existed, e.g.
data/xeon-2026-12-06/) are left out of the fit and listed under ``not_measured``.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from folio_replay.replay.costs.calibrate import nnls
from folio_replay.replay.costs.tables import load_table
from folio_replay.replay.models import unmap
from folio_replay.replay.models.walk import PMD_PAGES
from folio_replay.replay.predict import folio_states

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
# The kernel measured: this machine's 6.18.44, which splits lazyfree PMD THPs (984c0700854e
# "don't discard lazyfree THPs at PMD level"; replay/releases.toml): its traces fit this model
# and contradict batched-partial (tests/test_models.py).
MODEL = "batched-partial-pmd-split"
TRACE_PAIRS = {
    "lazy-16k": "lazy-16k-syscalls",
    "lazy-64k": "lazy-64k-syscalls",
    "redirty-last-64k": "redirty-last-64k-syscalls",
    "file-64k": "file-64k-syscalls",
}
ZAP_CEILING = 33  # tlb_single_page_flush_ceiling (arch/x86/mm/tlb.c), not settable here
# The reclaim fit: op groups, one scale each, and the relative weights inside a group (the
# estimates of replay/costs/x86.toml before this derivation, in ns).
GROUPS = {
    # the software work of reclaim per folio and per walk step: the measurements cannot tell
    # the per-folio part from the per-step part (every 6.18 lazyfree folio is one step, and
    # file folios add their page-cache removal), so one scale for all of it
    "software": [
        "folio_reclaim",
        "folio_free",
        "deferred_split",
        "folio_split",
        "walk_step",
        "lazyfree_check",
        "rss_update",
        "rmap_remove",
        "folio_put",
        "dirty_mark",
        "swapbacked_set",
    ],
    "page": ["pte_clear", "pte_write", "rmap_page", "page_free", "swap_entry", "pmd_split_page"],
    "remote": ["ipi_shootdown"],
    "pmd": ["pmd_clear", "pmd_write", "pmd_split", "deposit_zap"],
    "invlpg": ["invlpg"],
    "call": ["pageout_call"],
    # the swap write-out of a swap-backed folio (zram here), per folio and per page: the swap
    # scenarios of 4 folio sizes tell the two apart
    "swap_folio": ["swap_write"],
    "swap_page": ["swap_write_page"],
}
# Ops no fitted scenario separates from the others, kept at their weight (an estimate): the
# tlbbatch add (the two remote scenarios fix ipi_shootdown).
UNFITTED = ["tlbbatch_add"]
WEIGHTS = {
    "folio_reclaim": 1000,
    "folio_free": 600,
    "deferred_split": 150,
    "folio_split": 2000,
    "walk_step": 40,
    "lazyfree_check": 25,
    "rss_update": 35,
    "rmap_remove": 60,
    "folio_put": 15,
    "dirty_mark": 30,
    "swapbacked_set": 10,
    "pte_clear": 10,
    "pte_write": 8,
    "rmap_page": 8,
    "page_free": 10,
    "swap_entry": 40,
    "pmd_clear": 20,
    "pmd_write": 10,
    "pmd_split": 400,
    "pmd_split_page": 16,
    "deposit_zap": 150,
    "ipi_shootdown": 2000,
    "tlbbatch_add": 15,
    "invlpg": 1,  # fitted in ns: the INVLPG of cold memory, as reclaim meets it
    "pageout_call": 1,  # fitted in ns: the call's own work (call-64k: a call of one folio)
    "swap_write": 1,  # fitted in ns
    "swap_write_page": 1,  # fitted in ns
}
FLUSH = ("flush_partial", "flush_full")
FIT = [
    "lazy-16k",
    "lazy-32k",
    "lazy-64k",
    "lazy-128k",
    "lazy-256k",
    "lazy-512k",
    "lazy-1m",
    "redirty-first-64k",
    "redirty-last-64k",
    "file-16k",
    "file-64k",
    "file-256k",
    "remote-16k",
    "remote-64k",
    "lazy-pmd",
    "redirty-pmd",
    "call-16k",
    "call-64k",
    "call-256k",
    "pm-16k",
    "pm-64k",
    "pm-256k",
    "swap-16k",
    "swap-64k",
    "swap-256k",
    "swap-pmd",
]
# Predicted from the full fit, not fitted (none at present).
CHECKS: list[str] = []


def load(data: Path = DATA) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.read_csv(data / "episodes.csv.gz"), pd.read_csv(data / "folios.csv")


def trace_event_cost(episodes: pd.DataFrame) -> dict:
    """Step 1: ns per tracepoint record."""
    rows = []
    for traced, untraced in TRACE_PAIRS.items():
        a = episodes[episodes["scenario"] == traced]
        b = episodes[episodes["scenario"] == untraced]
        records = float(a["events_inside"].median())
        p10 = (np.percentile(a["raw_ns"], 10) - np.percentile(b["raw_ns"], 10)) / records
        low = (a["raw_ns"].min() - b["raw_ns"].min()) / records
        rows.append({"traced": traced, "records": records, "ns_per_record_p10": p10, "ns_min": low})
    frame = pd.DataFrame(rows)
    return {
        "ns": float(frame["ns_per_record_p10"].median()),
        "pairs": frame.round(1).to_dict("records"),
    }


def _zap_design(n: np.ndarray) -> np.ndarray:
    partial = (n >= 1) & (n <= ZAP_CEILING)
    return np.column_stack([np.ones_like(n), n, partial, partial * n, n > ZAP_CEILING]).astype(
        float
    )


ZAP_PARAMS = ["call", "zap_page", "flush_partial", "invlpg", "flush_full"]


def flush_costs(episodes: pd.DataFrame, trace_ns: float, prefix: str = "zapcold-") -> dict:
    """Step 2: the flush primitives from the ``prefix``N calls (``zapcold-``: the TLB emptied of
    the zapped pages first, as for the cold memory reclaim unmaps; ``zap-``: pages just
    touched); zap-0 (nothing to clear or flush) gives the call's own cost to both."""
    names = episodes["scenario"]
    zap = episodes[
        (names.str.startswith(prefix) & ~names.str.endswith("-syscalls")) | (names == "zap-0")
    ]
    med = zap.groupby("scenario")["robust_ns"].agg(["median", "size"])
    spread = zap.groupby("scenario")["robust_ns"].quantile([0.1, 0.9]).unstack()
    n = np.array([int(s.rsplit("-", 1)[1]) for s in med.index], dtype=float)
    y = med["median"].to_numpy() - trace_ns * (n >= 1)
    x = _zap_design(n)
    coef = nnls(x, y)
    rows = []
    for k in range(len(n)):
        keep = np.arange(len(n)) != k
        loo = nnls(x[keep], y[keep])
        measured = med["median"].iloc[k]
        fitted = x[k] @ coef + trace_ns * (n[k] >= 1)
        held = x[k] @ loo + trace_ns * (n[k] >= 1)
        rows.append(
            {
                "pages": int(n[k]),
                "calls": int(med["size"].iloc[k]),
                "median_ns": float(measured),
                "p10_ns": float(spread[0.1].iloc[k]),
                "p90_ns": float(spread[0.9].iloc[k]),
                "fitted_ns": float(fitted),
                "leave_one_out_ns": float(held),
                "leave_one_out_error": float(held / measured - 1),
            }
        )
    table = pd.DataFrame(rows).sort_values("pages")
    return {
        "params": dict(zip(ZAP_PARAMS, map(float, coef))),
        "calls": table.round(4).to_dict("records"),
        "loo_rms": float(np.sqrt(np.mean(table["leave_one_out_error"] ** 2))),
    }


@cache
def _counts(shape: tuple) -> Counter:
    """Mean untraced op counts of one folio shape on x86 under MODEL (where the folio's mm was
    loaded, ``mm_cpus``, as the call's trace shows it: local, remote or none)."""
    table = load_table("x86")
    states = folio_states(dict(shape), "x86")
    total: Counter = Counter()
    for state in states:
        for op, k in table.primitive_counts(unmap(MODEL, state)).items():
            total[op] += k / len(states)
    return total


def scenario_counts(folios: pd.DataFrame, scenario: str) -> Counter:
    """Op counts of one MADV_PAGEOUT call of ``scenario`` (the call's own work included)."""
    counts: Counter = Counter(pageout_call=1)
    for row in folios[folios["scenario"] == scenario].to_dict("records"):
        shape = {
            "kind": row["kind"],
            "nr_pages": int(row["nr_pages"]),
            "pmd_mapped": bool(row["pmd_mapped"]),
            "dirty_page": None if pd.isna(row["dirty_page"]) else int(row["dirty_page"]),
            "outcome": row["outcome"],
            # unknown (priced as a local flush) in measurements made before the column existed
            "mm_cpus": None if pd.isna(row.get("mm_cpus")) else row["mm_cpus"],
        }
        for op, k in _counts(tuple(sorted(shape.items()))).items():
            counts[op] += k * row["per_call"]
    return counts


def reclaim_costs(
    episodes: pd.DataFrame, folios: pd.DataFrame, trace_ns: float, flush: dict[str, float]
) -> dict:
    """Step 3: group scales of the reclaim software costs, with leave-one-out."""
    measured = set(episodes["scenario"])
    names = [name for name in FIT + CHECKS if name in measured]  # older data lacks newer ones
    stats = episodes.groupby("scenario").agg(
        robust=("robust_ns", "median"),
        p10=("robust_ns", lambda x: np.percentile(x, 10)),
        p90=("robust_ns", lambda x: np.percentile(x, 90)),
        raw=("raw_ns", "median"),
        records=("events_inside", "median"),
        calls=("robust_ns", "size"),
    )
    x86 = load_table("x86")
    fixed_ns = {**flush, "trace_event": trace_ns, **{op: WEIGHTS[op] for op in UNFITTED}}
    rows, features, fixed = [], [], []
    for name in names:
        counts = scenario_counts(folios, name)
        unknown = set(counts) - set(fixed_ns) - set(WEIGHTS)
        if unknown:
            raise ValueError(f"{name}: ops without a group or a measured cost: {unknown}")
        features.append([sum(counts[op] * WEIGHTS[op] for op in ops) for ops in GROUPS.values()])
        flush_part = sum(counts[op] * fixed_ns[op] for op in (*FLUSH, *UNFITTED) if op in counts)
        trace_part = trace_ns * stats.loc[name, "records"]
        fixed.append(flush_part + trace_part)
        rows.append({"scenario": name, "ops": {k: round(v, 3) for k, v in counts.items()}})
    a = np.array(features)
    f = np.array(fixed)
    b = stats.loc[names, "robust"].to_numpy()
    fit_rows = [names.index(s) for s in FIT if s in names]

    def solve(rows_: list[int]) -> np.ndarray:
        aa, bb, ff = a[rows_], b[rows_], f[rows_]
        return nnls(aa / bb[:, None], (bb - ff) / bb)

    scales = solve(fit_rows)
    out = []
    for i, name in enumerate(names):
        pred = float(a[i] @ scales + f[i])
        entry = {
            "scenario": name,
            "calls": int(stats.loc[name, "calls"]),
            "robust_median_ns": float(b[i]),
            "robust_p10_ns": float(stats.loc[name, "p10"]),
            "robust_p90_ns": float(stats.loc[name, "p90"]),
            "raw_median_ns": float(stats.loc[name, "raw"]),
            "fitted" if name in FIT else "predicted_ns": pred,
            "in_fit": name in FIT,
        }
        if name in FIT:
            entry["fitted_ns"] = entry.pop("fitted")
            held = solve([j for j in fit_rows if j != i])
            loo = float(a[i] @ held + f[i])
            entry["leave_one_out_ns"] = loo
            entry["leave_one_out_error"] = loo / b[i] - 1
        else:
            entry["check_error"] = pred / b[i] - 1
        out.append(entry)
    table = pd.DataFrame(out)
    loo = table["leave_one_out_error"].dropna()
    # an op that no fitted scenario has keeps its weight: the fit says nothing about it
    seen = {op for r in rows if r["scenario"] in FIT for op, k in r["ops"].items() if k}
    costs = {
        op: float(scales[k] * WEIGHTS[op]) if op in seen else float(WEIGHTS[op])
        for k, ops in enumerate(GROUPS.values())
        for op in ops
    }
    del x86
    return {
        "scales": dict(zip(GROUPS, map(float, scales))),
        "costs": costs,
        "unfitted": sorted(op for ops in GROUPS.values() for op in ops if op not in seen),
        "scenarios": table.round(4).to_dict("records"),
        "not_measured": [name for name in FIT + CHECKS if name not in measured],
        "ops": rows,
        "loo_rms": float(np.sqrt(np.mean(loo**2))),
        "loo_max": float(loo.abs().max()),
    }


SPLIT_FIXED = ("pmdp_invalidate", "folio_remove_rmap_pmd", "pgtable_trans_huge_withdraw")


def split_page_cost(data: Path = DATA) -> dict:
    """Step 4 (a cross-check): ns per page of a PMD split, from the perf profile of the PMD THP
    calls."""
    perf = pd.read_csv(data / "perf-pageout.csv")
    inclusive = perf[perf["how"] == "inclusive"].set_index(["kind", "function"])["us_per_folio"]
    rows = []
    for kind in ("lazy-pmd", "redirty-pmd"):
        split = float(inclusive[kind, "__split_huge_pmd_locked"])
        fixed = sum(float(inclusive.get((kind, f), 0.0)) for f in SPLIT_FIXED)
        rows.append(
            {
                "kind": kind,
                "split_us": split,
                "fixed_us": fixed,
                "ns_per_page": (split - fixed) * 1000 / PMD_PAGES,
            }
        )
    return {"ns": float(np.mean([r["ns_per_page"] for r in rows])), "kinds": rows}


def inline_trace_cost(episodes: pd.DataFrame) -> list[dict]:
    """The tlb_flush record's cost inside one zap call: zap-N with and without it."""
    rows = []
    for n in (16, 34):
        with_ = episodes[episodes["scenario"] == f"zap-{n}"]["robust_ns"].median()
        without = episodes[episodes["scenario"] == f"zap-{n}-syscalls"]["robust_ns"].median()
        rows.append({"pages": n, "ns": float(with_ - without)})
    return rows


def derive(data: Path = DATA) -> dict:
    """The whole derivation (steps 1-3) from the CSV files in ``data``."""
    episodes, folios = load(data)
    trace = trace_event_cost(episodes)
    trace["inline"] = inline_trace_cost(episodes)
    flush = flush_costs(episodes, trace["ns"], "zap-")
    flush["cold"] = flush_costs(episodes, trace["ns"], "zapcold-")
    primitives = {op: flush["params"][op] for op in FLUSH}
    reclaim = reclaim_costs(episodes, folios, trace["ns"], primitives)
    split = split_page_cost(data)
    meta = episodes.agg(
        sessions=("session", lambda s: sorted(set(s))),
        kernel=("kernel", lambda s: sorted(set(s))),
    )
    loads = episodes["loadavg_before"].str.split().str[0].astype(float)
    return {
        "kernel": meta.loc["kernel", "kernel"] if "kernel" in meta.index else None,
        "sessions": sorted(set(episodes["session"])),
        "load_1min": {
            "min": float(loads.min()),
            "median": float(loads.median()),
            "max": float(loads.max()),
        },
        "qemu_running_share": float(episodes["qemu_running"].mean()),
        "trace_event": trace,
        "flush": flush,
        "reclaim": reclaim,
        "split": split,
        "costs": {
            **reclaim["costs"],
            **primitives,
            "trace_event": trace["ns"],
        },
    }


def machine_table(result: dict, machine: str, data: Path) -> str:
    """A cost table of the machine ``data`` was measured on: ``x86.toml`` (its policy, and its
    cited and estimated ops) with every op the derivation measures replaced by this
    derivation's value, each with its provenance."""
    where = (
        f"measured here: bench/costs on {machine}; derive.py --data "
        f"{data.resolve().relative_to(HERE.parent.parent)}, sessions "
        f"{', '.join(result['sessions'])}, 1-min load {result['load_1min']['min']:.1f}.."
        f"{result['load_1min']['max']:.1f}"
    )
    reclaim = result["reclaim"]
    fit = f"leave-one-out RMS {reclaim['loo_rms']:.1%}, max {reclaim['loo_max']:.1%}"
    flush = result["flush"]
    flush_loo = max(abs(row["leave_one_out_error"]) for row in flush["calls"] if row["pages"])
    why = {
        "trace_event": "step 1, (10th percentile traced - untraced MADV_PAGEOUT) / records in "
        "a traced call, median of the pairs",
        **{
            op: f"step 2, non-negative least squares over the zap-N calls (MADV_DONTNEED of N "
            f"just-touched 4 KiB pages, 1000 calls each, medians), leave-one-out max "
            f"{flush_loo:.1%} for N >= 1 (N = 0, the call without a flush, fixes the level)"
            for op in FLUSH
        },
    }
    for group, ops in GROUPS.items():
        for op in ops:
            if op not in reclaim["unfitted"]:
                why[op] = (
                    f"step 3, group {group} scale {reclaim['scales'][group]:.4g} x weight "
                    f"{WEIGHTS[op]} ns ({fit})"
                )
    lines = [
        f"# x86_64 costs measured on {machine}: bench/costs/derive.py --data "
        f"{data.resolve().relative_to(HERE.parent.parent)} --table (README, 'Measured here').",
        "# Every other op and the flush policy are x86.toml's (`extends`); memcg_reclaim_call is",
        "# x86.toml's, measured on the machine that table was measured on.",
        "",
        "[table]",
        'arch = "x86"',
        'extends = "x86.toml"',
        f'description = "x86_64: x86.toml with the costs measured on {machine}"',
    ]
    for op, text in why.items():
        lines += [
            "",
            f"[ops.{op}]",
            f"ns = {result['costs'][op]:.1f}",
            f'source = "{where}: {text}"',
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--json", type=Path, help="write the derivation as JSON here")
    parser.add_argument("--table", type=Path, help="write the machine's cost table (TOML) here")
    parser.add_argument("--machine", help="the machine measured, for --table's provenance")
    args = parser.parse_args()
    try:
        result = derive(args.data)
    except (OSError, KeyError, ValueError, pd.errors.ParserError) as error:
        # a missing or damaged data directory: one line, no traceback
        raise SystemExit(f"derive.py: {args.data}: {type(error).__name__}: {error}") from None
    print(f"sessions {result['sessions']}, load (1 min) {result['load_1min']}")
    print(f"1. trace_event {result['trace_event']['ns']:.1f} ns")
    for pair in result["trace_event"]["pairs"]:
        print(f"   {pair}")
    print(f"   a tlb_flush record inside a zap call: {result['trace_event']['inline']}")
    print("2. flush primitives:", {k: round(v, 1) for k, v in result["flush"]["params"].items()})
    cold = result["flush"]["cold"]
    print("   (TLB emptied first:", {k: round(v, 1) for k, v in cold["params"].items()}, ")")
    for row in result["flush"]["calls"]:
        print(f"   {row}")
    print(f"   leave-one-out RMS {result['flush']['loo_rms']:.1%}")
    print(
        "3. reclaim group scales:", {k: round(v, 3) for k, v in result["reclaim"]["scales"].items()}
    )
    for row in result["reclaim"]["scenarios"]:
        print(f"   {row}")
    print(
        f"   leave-one-out RMS {result['reclaim']['loo_rms']:.1%}, "
        f"max {result['reclaim']['loo_max']:.1%}"
    )
    split = result["split"]
    print(
        f"4. cross-check: perf puts a PMD split at {split['ns']:.2f} ns per page "
        f"(fitted pmd_split_page {result['costs']['pmd_split_page']:.2f}):",
        split["kinds"],
    )
    print("costs (ns):", {k: round(v, 1) for k, v in result["costs"].items()})
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=float) + "\n")
    if args.table:
        if not args.machine:
            raise SystemExit("derive.py: --table needs --machine (what was measured)")
        args.table.write_text(machine_table(result, args.machine, args.data))


if __name__ == "__main__":
    main()
