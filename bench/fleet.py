"""Fleet benchmark (issue 13 item 5): ``folio-replay fleet`` on >= 1,000 bundles.

Builds the bundles in a temporary directory as copies of the real fixture bundles, round
robin: each copy is a directory with its own meta.json (copied) and symlinks to the fixture's
trace file and stats trees (the loader reads through symlinks to regular files). Then times
the whole command in a new process, three times over one dataset:

* the first run: interpreter start, the LocalCluster's start, every bundle replayed, the
  dataset written, the summary printed;
* the same command again: every bundle skipped (the resume path, no cluster);
* reading the dataset back: pandas (pyarrow), Polars and DuckDB, hive partitioning.

Prints a Markdown section; ``--write`` puts it in ``bench/RESULTS.md`` between its markers
(the file is read again right before, other sections are kept).

Usage: python -m bench.fleet [--bundles 1000] [--workers N] [--skip-slow] [--work DIR] [--write]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import dask
import duckdb
import pandas as pd
import polars as pl

from bench.run import write_section
from folio_replay.fleet import load_status

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures" / "bundles"
BEGIN, END = "<!-- bench/fleet.py: begin -->", "<!-- bench/fleet.py: end -->"
SLOW = "partial-munmap"  # 3-5 s each on this machine, 10x the others


def fixture_bundles(skip_slow: bool) -> list[Path]:
    """The committed bundles, in path order."""
    found = sorted(meta.parent for meta in FIXTURES.rglob("meta.json"))
    return [path for path in found if not (skip_slow and path.name == SLOW)]


def make_fleet(root: Path, count: int, sources: list[Path]) -> None:
    """``count`` bundles under ``root``: copies of ``sources``, round robin."""
    for number in range(count):
        source = sources[number % len(sources)]
        target = root / f"{number:05d}-{source.parent.name}-{source.name}"
        target.mkdir(parents=True)
        shutil.copy(source / "meta.json", target / "meta.json")
        for part in source.iterdir():
            if part.name != "meta.json":
                (target / part.name).symlink_to(part)


def timed(argv: list[str]) -> tuple[float, int, str]:
    """(wall seconds, peak RSS of the largest process in KiB, stdout) of one command."""
    with tempfile.NamedTemporaryFile("r") as report:
        start = time.monotonic()
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", report.name, *argv],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        wall = time.monotonic() - start
        if done.returncode != 0:
            raise SystemExit(f"{argv} failed: {done.stderr.strip()[-800:]}")
        return wall, int(report.read().split()[-1]), done.stdout


def reads(dataset: Path) -> dict[str, float]:
    """Seconds to read the whole dataset with pandas, Polars and DuckDB."""
    glob = f"{dataset}/**/*.parquet"
    seconds = {}
    strings = {"arch": pl.String, "kernel_series": pl.String, "model": pl.String}
    for name, read in (
        ("pandas", lambda: len(pd.read_parquet(dataset))),
        (
            "Polars",
            lambda: len(
                pl.scan_parquet(glob, hive_partitioning=True, hive_schema=strings).collect()
            ),
        ),
        (
            "DuckDB",
            lambda: duckdb.sql(
                f"select count(*) from read_parquet('{glob}', hive_partitioning = true)"
            ).fetchall()[0][0],
        ),
    ):
        start = time.monotonic()
        read()
        seconds[name] = time.monotonic() - start
    return seconds


def machine() -> str:
    """CPU model, CPUs, memory, kernel, versions and the load average now."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    return (
        f"{model}, {len(os.sched_getaffinity(0))} vCPUs, {memory:.0f} GiB RAM, "
        f"Linux {platform.release()}; Python {platform.python_version()}, dask "
        f"{dask.__version__}, pyarrow {__import__('pyarrow').__version__}"
    )


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def section(args: argparse.Namespace, result: dict) -> str:
    """The Markdown section for bench/RESULTS.md."""
    status = result["status"]
    ok = int((status["status"] == "ok").sum())
    tasks = status["seconds"].sum()
    first, again = result["first"], result["again"]
    workers = args.workers or len(os.sched_getaffinity(0))
    read = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result["reads"].items())
    return "\n".join(
        [
            BEGIN,
            "## Fleet benchmark (`bench/fleet.py`)",
            "",
            f"Latest run: {result['when']}, `python -m bench.fleet {' '.join(result['argv'])}`.",
            "",
            f"Machine: {result['machine']}; load average {result['load_start']} at start, "
            f"{result['load_end']} at the end (the vCPUs are shared with other jobs).",
            "",
            f"{args.bundles} bundles made as copies of {result['sources']} committed fixture "
            f"bundles{' (without the partial-munmap ones)' if args.skip_slow else ''}, round "
            "robin (own meta.json, symlinked trace and stats). `folio-replay fleet DIR -o "
            f"DATASET --workers {workers}`, timed as a whole process (interpreter, LocalCluster "
            f"of {workers} worker processes, replay, dataset, summary); peak RSS is the largest "
            "single process's.",
            "",
            "| run | bundles | wall s | bundles/s | peak RSS MiB | note |",
            "|---|---:|---:|---:|---:|---|",
            f"| first run | {args.bundles} | {first[0]:.1f} | {args.bundles / first[0]:.2f} | "
            f"{first[1] / 1024:.0f} | {ok} ok, {args.bundles - ok} errors; tasks took "
            f"{tasks:.0f} s in all ({tasks / args.bundles:.2f} s each): "
            f"{tasks / first[0]:.2f} workers busy on average |",
            f"| same command again | {args.bundles} | {again[0]:.1f} | "
            f"{args.bundles / again[0]:.1f} | {again[1] / 1024:.0f} | every bundle skipped "
            "(statuses read, no cluster), summary over the dataset |",
            "",
            f"Dataset: {result['files']:,} Parquet files ({result['mib']:.1f} MiB), one per "
            "bundle and partition (arch × kernel series × model), plus one status per bundle. "
            f"Reading it all back: {read}.",
            END,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=int, default=1000)
    parser.add_argument("--workers", type=int, help="default: one per CPU")
    parser.add_argument("--skip-slow", action="store_true", help=f"leave out the {SLOW} bundles")
    parser.add_argument("--work", type=Path, help="directory for the bundles and dataset")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="folio-fleet-", dir=args.work))
    try:
        sources = fixture_bundles(args.skip_slow)
        make_fleet(work / "bundles", args.bundles, sources)
        dataset = work / "dataset"
        command = [
            str(Path(sys.executable).with_name("folio-replay")),
            "fleet",
            str(work / "bundles"),
        ]
        command += ["-o", str(dataset)]
        if args.workers:
            command += ["--workers", str(args.workers)]
        result: dict = {
            "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "argv": sys.argv[1:],
            "machine": machine(),
            "load_start": load(),
            "sources": len(sources),
        }
        result["first"] = timed(command)
        print(f"first run: {result['first'][0]:.1f} s, load {load()}", flush=True)
        result["again"] = timed(command)
        result["load_end"] = load()
        result["status"] = load_status(dataset)
        files = list(dataset.rglob("*.parquet"))
        result["files"] = len(files)
        result["mib"] = sum(path.stat().st_size for path in files) / 2**20
        result["reads"] = reads(dataset)
        print(result["first"][2])
        text = section(args, result)
        print(text)
        if args.write:
            write_section(text, BEGIN, END)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
