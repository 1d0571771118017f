#!/usr/bin/env python3
"""Turn the traces of one ``bench/costs/measure.py`` session into the committed CSV files.

``.venv/bin/python bench/costs/summarize.py --raw /work/cost-runs/STAMP [--raw ...]`` writes
(a scenario measured in more than one session is taken from the last ``--raw`` that has it)

- ``bench/costs/data/episodes.csv.gz``: one row per timed call (each MADV_PAGEOUT of the pageout
  scenarios, each MADV_DONTNEED of the ``zap`` ones): ``raw_ns`` is its duration on the trace
  clock (sys_enter -> sys_exit of the benchmark's timed thread), ``robust_ns`` the same with
  every gap between consecutive events of the call that is an outlier for its kind of gap
  (more than 4 times the scenario's median of that gap and more than 10 us above it: the
  thread was preempted or interrupted there, which a 2-vCPU VM shared with other jobs does
  often) replaced by that median; the events inside the call by kind; the run's load average
  and whether a QEMU ran;
- ``bench/costs/data/gaps.csv``: per scenario and kind of gap (event A followed by event B of
  the timed thread inside a call): how many, median, 10th and 90th percentile, and the mean
  without outliers;
- ``bench/costs/data/folios.csv``: per pageout scenario traced with the full event set, the
  large folios folio-replay's reconstruction finds in each MADV_PAGEOUT (process_madvise too) of
  its first run, by shape (kind, pages, PMD mapping, dirty page, outcome, where the mm was
  loaded: ``mm_cpus``, from the call's x86 ``tlb_flush`` events) with their number per call: what
  bench/costs/derive.py replays through the captured kernel's model to count the ops.

Calls of "syscalls" scenarios have a single gap (enter -> exit): their ``robust_ns`` is their
``raw_ns``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from folio_replay.replay.reconstruct import reconstruct
from folio_replay.replay.reconstruct.episodes import PAGEOUT_SYSCALLS
from folio_replay.replay.reconstruct.unmaps import PAGEOUT_KINDS

from folio_replay import read_trace
from folio_replay.errors import InputError

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
PAGEOUT = {"MADV_PAGEOUT", "21", "0x15"}
DONTNEED = {"MADV_DONTNEED", "4", "0x4"}
OUTLIER_FACTOR = 4.0
OUTLIER_MIN_NS = 10_000
COUNTED = {
    "rss_stat": "rss_stat",
    "tlb_flush": "tlb_flush",
    "mm_page_free": "page_free",
    "mm_vmscan_reclaim_pages": "reclaim_lists",
    "mm_lru_insertion": "lru_insertions",
    "mm_filemap_delete_from_page_cache": "cache_deletes",
    "mm_vmscan_write_folio": "write_folio",
    "mm_page_alloc": "page_alloc",
}


def calls_of(ev: pd.DataFrame, behaviours: set[str]) -> list[tuple[int, pd.Series, pd.Series]]:
    """(index, enter, exit) of the timed thread's madvise (or process_madvise: ``-X``) calls of
    one behaviour."""
    out = []
    for call in PAGEOUT_SYSCALLS:
        calls = ev[ev["event"].isin([f"sys_enter_{call}", f"sys_exit_{call}"])]
        if f"{call}.behavior" not in ev.columns or calls.empty:
            continue
        enters = calls[
            (calls["event"] == f"sys_enter_{call}")
            & calls[f"{call}.behavior"].astype(str).str.strip().isin(behaviours)
        ]
        for _, enter in enters.iterrows():
            later = calls[
                (calls["event"] == f"sys_exit_{call}")
                & (calls["pid"] == enter["pid"])
                & (calls["ts_ns"] > enter["ts_ns"])
            ]
            if len(later):
                out.append((len(out), enter, later.iloc[0]))
    return out


def episode_rows(record: dict, ev: pd.DataFrame) -> tuple[list[dict], pd.DataFrame]:
    """The calls of one run and the gaps between consecutive events inside them."""
    mode = record["args"][record["args"].index("-m") + 1]
    behaviours = DONTNEED if mode == "zap" else PAGEOUT
    ev = ev.sort_values(["ts_ns", "line"], kind="stable")
    rows, gaps = [], []
    for i, enter, leave in calls_of(ev, behaviours):
        win = ev[
            (ev["ts_ns"] >= enter["ts_ns"])
            & (ev["ts_ns"] <= leave["ts_ns"])
            & (ev["pid"] == enter["pid"])
            & (ev["cpu"] == enter["cpu"])
        ]
        win = win[(win["line"] >= enter["line"]) & (win["line"] <= leave["line"])]
        names = win["event"].to_numpy()
        gaps.append(
            pd.DataFrame(
                {
                    "call": i,
                    "a": names[:-1],
                    "b": names[1:],
                    "dt": np.diff(win["ts_ns"].to_numpy()),
                }
            )
        )
        inside = win.iloc[1:-1]
        counts = inside["event"].value_counts()
        flush = inside[inside["event"] == "tlb_flush"]
        free = inside[inside["event"] == "mm_page_free"]
        orders = free["page.order"].fillna(0).astype(int)
        rows.append(
            {
                "session": record["session"].name,
                "scenario": record["scenario"],
                "round": record["round"],
                "call": i,
                "events": record["events"],
                "raw_ns": int(leave["ts_ns"] - enter["ts_ns"]),
                "bench_ns": record["bench_ns"][i] if i < len(record["bench_ns"]) else None,
                "large_frees": int((orders > 0).sum()),
                "large_free_pages": int((2 ** orders[orders > 0]).sum()),
                **{col: int(counts.get(name, 0)) for name, col in COUNTED.items()},
                "tlb_flush_kinds": ";".join(
                    f"{reason}:{pages}={n}"
                    for (reason, pages), n in flush.groupby(
                        [
                            flush["tlb_flush.reason"].astype(str),
                            flush["tlb_flush.pages"].astype(int),
                        ]
                    )
                    .size()
                    .items()
                ),
                "events_inside": len(inside),
                "loadavg_before": record["loadavg_before"],
                "loadavg_after": record["loadavg_after"],
                "qemu_running": int(record["qemu_running"]),
                "started_utc": record["started_utc"],
                "kernel": record["kernel"],
            }
        )
    frame = pd.concat(gaps) if gaps else pd.DataFrame(columns=["call", "a", "b", "dt"])
    frame["round"] = record["round"]
    return rows, frame


def robust(episodes: pd.DataFrame, gaps: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``robust_ns`` per call and the per-kind gap statistics of one scenario."""
    med = gaps.groupby(["a", "b"])["dt"].median().rename("med")
    gaps = gaps.join(med, on=["a", "b"])
    outlier = (gaps["dt"] > OUTLIER_FACTOR * gaps["med"]) & (
        gaps["dt"] > gaps["med"] + OUTLIER_MIN_NS
    )
    gaps["kept"] = np.where(outlier, gaps["med"], gaps["dt"])
    totals = gaps.groupby(["round", "call"])["kept"].sum().rename("robust_ns")
    episodes = episodes.join(totals, on=["round", "call"])
    episodes["robust_ns"] = episodes["robust_ns"].round().astype("int64")
    stats = (
        gaps.assign(clean=np.where(outlier, np.nan, gaps["dt"]))
        .groupby(["a", "b"])
        .agg(
            n=("dt", "size"),
            median_ns=("dt", "median"),
            p10_ns=("dt", lambda x: np.percentile(x, 10)),
            p90_ns=("dt", lambda x: np.percentile(x, 90)),
            clean_mean_ns=("clean", "mean"),
            outliers=("clean", lambda x: int(x.isna().sum())),
        )
        .reset_index()
    )
    return episodes, stats


SHAPE = ["kind", "nr_pages", "pmd_mapped", "dirty_page", "outcome", "captured_unmap", "mm_cpus"]


def folio_shapes(scenario: str, trace_path: Path) -> pd.DataFrame:
    """The reconstruction's large folios per MADV_PAGEOUT of one run, by shape."""
    recon = reconstruct(read_trace(trace_path), "x86_64")
    episodes = recon.episodes[recon.episodes["kind"].isin(PAGEOUT_KINDS)]["episode"]
    folios = recon.folios[recon.folios["episode"].isin(episodes)]
    per_call = folios.groupby(SHAPE, dropna=False).size() / max(1, len(episodes))
    frame = per_call.rename("per_call").reset_index()
    frame.insert(0, "scenario", scenario)
    frame["calls"] = len(episodes)
    return frame


MANIFEST_KEYS = ("scenario", "raw", "events")


def read_manifest(session: Path) -> list[dict]:
    """The runs a measure.py session recorded (``manifest.jsonl``, one JSON object a line);
    a missing or damaged manifest ends the program with one line naming the file and line."""
    path = session / "manifest.jsonl"
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise SystemExit(f"summarize.py: {path}: {error.strerror}") from None
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise SystemExit(f"summarize.py: {path}:{number}: {error.msg}") from None
        if not isinstance(record, dict):
            raise SystemExit(f"summarize.py: {path}:{number}: not a JSON object")
        missing = [key for key in MANIFEST_KEYS if key not in record]
        if missing:
            raise SystemExit(f"summarize.py: {path}:{number}: no {', '.join(missing)}")
        records.append({**record, "session": session})
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--raw", type=Path, action="append", required=True, help="a measure.py session directory"
    )
    parser.add_argument("--out", type=Path, default=DATA)
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the rows of the CSV files in --out for the scenarios these sessions lack",
    )
    args = parser.parse_args()
    by_scenario: dict[str, list[dict]] = {}
    for session in args.raw:
        records = read_manifest(session)
        for name in {r["scenario"] for r in records}:
            by_scenario[name] = [r for r in records if r["scenario"] == name]
    all_episodes, all_gaps, all_shapes = [], [], []
    for scenario, runs in by_scenario.items():
        rows, gaps = [], []
        for record in runs:
            path = record["session"] / record["raw"]
            try:
                r, g = episode_rows(record, read_trace(path).to_pandas())
            except InputError as error:  # names the file and line itself
                raise SystemExit(f"summarize.py: {error}") from None
            except (OSError, KeyError, ValueError) as error:
                raise SystemExit(f"summarize.py: {path}: {type(error).__name__}: {error}") from None
            rows += r
            gaps.append(g)
        episodes, stats = robust(pd.DataFrame(rows), pd.concat(gaps))
        if runs[0]["events"] == "full":
            all_shapes.append(folio_shapes(scenario, runs[0]["session"] / runs[0]["raw"]))
        all_episodes.append(episodes)
        all_gaps.append(stats.assign(scenario=scenario))
        print(
            f"{scenario}: {len(episodes)} calls, raw median {episodes['raw_ns'].median():.0f} ns, "
            f"robust median {episodes['robust_ns'].median():.0f} ns"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    if args.merge:
        for name, frames in (
            ("episodes.csv.gz", all_episodes),
            ("gaps.csv", all_gaps),
            ("folios.csv", all_shapes),
        ):
            if (args.out / name).exists():
                old = pd.read_csv(args.out / name)
                frames.insert(0, old[~old["scenario"].isin(list(by_scenario))])
    episodes = pd.concat(all_episodes)
    episodes.to_csv(args.out / "episodes.csv.gz", index=False)
    gaps = pd.concat(all_gaps)
    gaps = gaps[["scenario", *[c for c in gaps.columns if c != "scenario"]]]
    gaps.round(1).to_csv(args.out / "gaps.csv", index=False)
    pd.concat(all_shapes).to_csv(args.out / "folios.csv", index=False)
    print(f"-> {args.out}: episodes.csv.gz, gaps.csv, folios.csv")


if __name__ == "__main__":
    main()
