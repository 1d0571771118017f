"""The memcg reclaim call's own cost on this machine, from the force_empty captures of
bench/costs/memcg_calls.sh.

A write to v1 ``memory.force_empty`` drains the LRU caches (``lru_add_drain_all()``,
``drain_all_stock()``), then calls ``try_to_free_mem_cgroup_pages()`` until the cgroup is empty
(mm/memcontrol-v1.c ``mem_cgroup_force_empty()``); the trace shows each call as a
memcg_reclaim begin/end pair (the episode's ``nested``). Per capture, the write's measured
time less what the folios cost (their traced price under the captured kernel's model, x86
table) and less the records the trace wrote beyond the folios' (each at the table's
``trace_event``) is the work of the write and its calls:

    residual = write + call * calls

fitted by least squares over the median residual of each scenario (5 rounds), each scenario's
leave-one-out error from a fit without it. replay/costs/x86.toml's ``memcg_reclaim_call``
holds the call's cost (tests/test_memcg_calls.py checks it); the write's is not priced.

Usage: python -m bench.costs.memcg_calls RAW_DIR [--write]   (--write: bench/costs/data/
memcg-calls.csv and the section of bench/RESULTS.md); --from-data refits the committed CSV.
"""

from __future__ import annotations

import argparse
import re
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from folio_replay.replay.analysis import analyse
from folio_replay.replay.costs.tables import load_table

from bench.run import machine, write_section

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "memcg-calls.csv"
BEGIN, END = (
    "<!-- bench/costs/memcg_calls.py: begin -->",
    "<!-- bench/costs/memcg_calls.py: end -->",
)
NAME = re.compile(r"(?P<scenario>.+)-r(?P<round>\d+)$")


def measure(raw: Path) -> pd.DataFrame:
    """One row per capture: its force_empty write's time, calls, folios and their prices."""
    trace_ns = load_table("x86").ops["trace_event"].ns
    rows = []
    for bundle in sorted(p for p in raw.iterdir() if (p / "meta.json").exists()):
        name = NAME.match(bundle.name)
        if name is None:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            analysis = analyse(bundle, archs=["x86"])
        episodes = analysis.recon.episodes
        writes = episodes[episodes["kind"] == "proactive_reclaim"]
        if len(writes) != 1:
            raise SystemExit(f"{bundle}: {len(writes)} force_empty writes, not one")
        write = writes.iloc[0]
        rows_of = analysis.predictions
        rows_of = rows_of[
            (rows_of["arch"] == "x86")
            & (rows_of["model"] == analysis.model)
            & (rows_of["episode"] == write["episode"])
        ]
        traced, untraced = rows_of["traced_time_ns"].sum(), rows_of["time_ns"].sum()
        records = int(write["end_seq"] - write["start_seq"] - 1)  # inside the write
        folio_records = (traced - untraced) / trace_ns
        rows.append(
            {
                "scenario": name["scenario"],
                "round": int(name["round"]),
                "model": analysis.model,
                "calls": int(write["nested"]),
                "folios": int(rows_of["folios"].sum()),
                "folio_kb": int(rows_of["size_kb"].max()) if len(rows_of) else 0,
                "duration_ns": int(write["duration_ns"]),
                "folio_traced_ns": round(float(traced), 1),
                "records": records,
                "other_records": round(records - folio_records, 1),
                "residual_ns": round(
                    float(write["duration_ns"] - traced - (records - folio_records) * trace_ns), 1
                ),
            }
        )
    return pd.DataFrame(rows)


def fit(rows: pd.DataFrame) -> dict:
    """Least squares of the scenario medians: write + call * calls, with leave-one-out."""
    med = rows.groupby("scenario").agg(
        calls=("calls", "median"),
        residual=("residual_ns", "median"),
        p10=("residual_ns", lambda s: s.quantile(0.1)),
        p90=("residual_ns", lambda s: s.quantile(0.9)),
        runs=("residual_ns", "size"),
    )

    def solve(part: pd.DataFrame) -> tuple[float, float]:
        design = np.column_stack([np.ones(len(part)), part["calls"].to_numpy(float)])
        (write, call), *_ = np.linalg.lstsq(design, part["residual"].to_numpy(float), rcond=None)
        return float(write), float(call)

    write, call = solve(med)
    loo = {}
    for scenario in med.index:
        w, c = solve(med.drop(index=scenario))
        predicted = w + c * med.loc[scenario, "calls"]
        loo[scenario] = predicted / med.loc[scenario, "residual"] - 1
    med["loo_error"] = pd.Series(loo)
    return {"write_ns": write, "call_ns": call, "scenarios": med.sort_values("calls")}


def section(rows: pd.DataFrame, result: dict, started: str) -> str:
    """The Markdown section of bench/RESULTS.md."""
    med = result["scenarios"]
    rms = float(np.sqrt((med["loo_error"] ** 2).mean()))
    lines = [
        BEGIN,
        "## The memcg reclaim call (bench/costs/memcg_calls.py)",
        "",
        f"Run: {started}, `bench/costs/memcg_calls.sh RAW 5` then "
        "`python -m bench.costs.memcg_calls RAW --write` (per capture: "
        "`bench/costs/data/memcg-calls.csv`).",
        "",
        f"Machine: {machine()}.",
        "",
        "A process holds MIB of clean lazyfree anon (64 KiB mTHP, or PMD THP) in the capture's "
        "v1 memcg; the traced shell writes `memory.force_empty`. Residual: the write's time "
        "less its folios' traced price (x86 table, the captured kernel's model) and less the "
        "other records it wrote at `trace_event` each; medians of the rounds:",
        "",
        "| scenario | runs | memcg reclaim calls | residual µs (p10–p90) | leave-one-out error |",
        "|---|---:|---:|---:|---:|",
    ]
    for scenario, row in med.iterrows():
        lines.append(
            f"| `{scenario}` | {int(row['runs'])} | {row['calls']:.0f} | "
            f"{row['residual'] / 1e3:.0f} ({row['p10'] / 1e3:.0f}–{row['p90'] / 1e3:.0f}) | "
            f"{row['loo_error']:+.0%} |"
        )
    lines += [
        "",
        f"Fit: **{result['call_ns'] / 1e3:.2f} µs per memcg reclaim call** "
        f"(`try_to_free_mem_cgroup_pages()` beyond its folios) and "
        f"{result['write_ns'] / 1e3:.0f} µs per force_empty write; leave-one-out RMS "
        f"{rms:.0%}. `x86.toml` prices the call (`memcg_reclaim_call`) once per "
        "memcg_reclaim begin/end pair of a trace: reclaim through a memcg (its limit, "
        "`memory.reclaim`, `memory.force_empty`) makes one per SWAP_CLUSTER_MAX (32) pages "
        "reclaimed or per PMD THP. The write's own cost is not priced.",
        END,
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", nargs="?", type=Path, help="the bundles of memcg_calls.sh")
    parser.add_argument("--from-data", action="store_true", help=f"refit {DATA.name}")
    parser.add_argument("--write", action="store_true", help="write the CSV and RESULTS.md")
    args = parser.parse_args()
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if args.from_data:
        rows = pd.read_csv(DATA)
    elif args.raw is not None:
        rows = measure(args.raw)
    else:
        parser.error("give RAW_DIR or --from-data")
    result = fit(rows)
    text = section(rows, result, started)
    print(text)
    if args.write:
        rows.to_csv(DATA, index=False)
        write_section(text, BEGIN, END)


if __name__ == "__main__":
    main()
