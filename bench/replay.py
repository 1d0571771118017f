"""Replay benchmark: the whole ``folio-replay replay`` command on large bundles built from a
real capture; writes its table into ``bench/RESULTS.md``.

The input bundle is a real host capture's trace repeated with shifted times
(:func:`bench.make_inputs.make_text`: the same process reclaiming the same folios again and
again, each copy seconds after the last) with its meta.json and no stats (the repeated trace
has no counters to validate against). Each run is its own process under ``/usr/bin/time``
(wall time, peak RSS), interpreter start and imports included:

* ``folio-replay replay`` (the streamed replay) on a small and a large copy (>= 5 GB,
  >= 10 M folio unmaps by default);
* the in-memory path (``analyse()`` then ``Analysis.write_report()``, what ``replay`` ran
  before it streamed) on the small copy, side by side;
* the replay stage alone, in process.

``--against PYTHON`` measures every row with a second interpreter too, whose ``folio_replay``
is other code (e.g. a virtual environment holding an install of the previous commit), run
for run alternately with this one: today's code and the change side by side in one run.

Usage: python -m bench.replay [--small-mb 200] [--large-gb 9] [--against PYTHON] [--work DIR]
[--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

from bench.make_inputs import make_text
from bench.run import machine, measure, warm, write_section

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "fixtures/bundles/host/6.18.44-fc-v1300/busy-microbench"
BEGIN, END = "<!-- bench/replay.py: begin -->", "<!-- bench/replay.py: end -->"
# the command, run by an interpreter given (-P: the working directory, this repository, is not
# put on its path, so an interpreter of another install imports its own folio_replay)
STREAMED = "`folio-replay replay` (streamed)"
CLI = "import sys; from folio_replay.cli import main; sys.argv[0] = 'folio-replay'; main()"
IN_MEMORY = (
    "import sys; from folio_replay import analyse; "
    "analyse(sys.argv[1]).write_report(sys.argv[2], force=True)"
)
# The replay stage alone (issue 13's "whole replay stage": reconstruction, recognition, the
# models, pricing, validation facts), timed in process on a trace already read into memory.
STAGE_RUNS = 5
STAGE = """
import sys, time
from folio_replay import load_bundle
from folio_replay.replay.analysis import captured_machine
from folio_replay.replay.archs import ARCH_OF_MACHINE, ARCHS
from folio_replay.replay.models import MODELS
from folio_replay.replay.predict import load_tables, predictions_frame, replay_folios
from folio_replay.replay.recognise import recognise
from folio_replay.replay.reconstruct import reconstruct
from folio_replay.replay.timing import reclaim_calls
from folio_replay.replay.validate import Facts
bundle = load_bundle(sys.argv[1])
trace = bundle.read_trace()
start = time.perf_counter()
machine = captured_machine(bundle)
recon = reconstruct(trace, machine)
model, _ = recognise(bundle.meta, recon, ARCH_OF_MACHINE[machine])
models = list(dict.fromkeys([model, *(n for n, m in MODELS.items() if m.default)]))
tables = load_tables(ARCHS, None)
bounds = replay_folios(recon.folios, models, tables)
predictions_frame(bounds, tables, reclaim_calls(recon.episodes))
Facts.of(recon)
print(len(recon.folios), time.perf_counter() - start)
"""


def make_bundle(
    directory: Path, nbytes: int, fixture: Path = FIXTURE, made_by: str = "bench/replay.py"
) -> dict:
    """A bundle of about ``nbytes`` of ``fixture``'s trace text, repeated (``made_by``: the
    benchmark, noted in its meta.json)."""
    directory.mkdir(parents=True, exist_ok=True)
    trace = next(fixture.glob("trace.txt*"))
    made = make_text(str(trace), str(directory / "trace.txt"), nbytes)
    meta = json.loads((fixture / "meta.json").read_text())
    meta["made_by"] = f"{made_by}: {fixture.relative_to(REPO)} trace repeated"
    (directory / "meta.json").write_text(json.dumps(meta, indent=1))
    return made


def add_side_by_side(parser: argparse.ArgumentParser) -> None:
    """The options every replay benchmark takes: ``--against``, ``--work``, ``--keep``."""
    parser.add_argument(
        "--against",
        metavar="PYTHON",
        help="an interpreter of another install (today's code) to measure side by side",
    )
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the inputs and reports")


def interpreters(against: str | None) -> dict[str, str]:
    """The interpreters measured, by code: this checkout's, and ``against``'s if given."""
    return {"this": sys.executable, **({"against": against} if against else {})}


def run(python: str, label: str, argv: list[str], report: Path, size: int) -> dict:
    """One measured run of ``argv`` (after ``python -P``) writing the report ``report``."""
    shutil.rmtree(report, ignore_errors=True)
    wall, rss_kib, _ = measure([python, "-P", *argv], stdout_to_null=True)
    return {
        "label": label,
        "size": size,
        "events": pq.read_metadata(report / "events.parquet").num_rows,
        "folios": pq.read_metadata(report / "folios.parquet").num_rows,
        "wall": wall,
        "rss_mib": rss_kib / 1024,
    }


def measured(
    codes: dict[str, str], label: str, argv: list[str], report: Path, size: int
) -> list[str]:
    """The table rows of one run of ``argv`` by each interpreter of ``codes``, in turn."""
    return [row(code, run(python, label, argv, report, size)) for code, python in codes.items()]


def replay_argv(bundle: Path, report: Path) -> list[str]:
    """The arguments of ``folio-replay replay`` of ``bundle`` into ``report``."""
    return ["-c", CLI, "replay", str(bundle), "-o", str(report), "--force"]


def stage(python: str, bundle: Path) -> tuple[int, float]:
    """(folio unmaps, seconds) of the replay stage, timed in a fresh process."""
    folios, seconds = measure([python, "-P", "-c", STAGE, str(bundle)])[2].split()
    return int(folios), float(seconds)


def row(code: str, result: dict) -> str:
    """A table row of one measured run."""
    wall = result["wall"]
    return (
        f"| {result['label']} | {code} | {result['size'] / 2**30:.2f} GiB | "
        f"{result['events']:,} | {result['folios']:,} | {wall:.1f} | "
        f"{result['events'] / wall / 1e6:.2f} | {result['folios'] / wall / 1e3:,.0f} | "
        f"{result['rss_mib']:,.0f} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small-mb", type=int, default=200)
    parser.add_argument("--large-gb", type=float, default=9)
    add_side_by_side(parser)
    args = parser.parse_args(argv)
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    about = machine()
    codes = interpreters(args.against)
    work = Path(tempfile.mkdtemp(prefix="replay-bench-", dir=args.work))
    rows: list[str] = []
    try:
        small, large = work / "small", work / "large"
        make_bundle(small, args.small_mb << 20)
        small_size = (small / "trace.txt").stat().st_size
        warm(small / "trace.txt")
        rows += measured(
            codes,
            "in memory: `analyse()` + `write_report()`",
            ["-c", IN_MEMORY, str(small), str(work / "r-mem")],
            work / "r-mem",
            small_size,
        )
        rows += measured(
            codes, STREAMED, replay_argv(small, work / "r-small"), work / "r-small", small_size
        )
        # in a fresh process each time, the codes taking turns; the median of 5, since one
        # run here moves by up to 2x (the first after other work is often the slowest)
        stages: dict[str, list[tuple[int, float]]] = {code: [] for code in codes}
        for _ in range(STAGE_RUNS):
            for code, python in codes.items():
                stages[code].append(stage(python, small))
        make_bundle(large, int(args.large_gb * 2**30))
        large_size = (large / "trace.txt").stat().st_size
        rows += measured(
            codes, STREAMED, replay_argv(large, work / "r-large"), work / "r-large", large_size
        )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    for code, runs in stages.items():
        folios = runs[0][0]
        times = sorted(seconds for _, seconds in runs)
        seconds = times[len(times) // 2]
        rows.append(
            f"| the replay stage in process (reconstruction, recognition, models, pricing, "
            f"validation facts; the trace read before; median of {STAGE_RUNS} processes, "
            f"{times[0]:.2f}-{times[-1]:.2f} s) | {code} | {small_size / 2**30:.2f} GiB | - | "
            f"{folios:,} | {seconds:.2f} | - | {folios / seconds / 1e3:,.0f} | - |"
        )
    table = "\n".join(
        [
            "| path | code | trace text | events | folio unmaps | process s | M events/s | "
            "k folios/s | peak RSS MiB |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )
    against = f" --against {args.against}" if args.against else ""
    section = (
        f"{BEGIN}\n## Replay (bench/replay.py)\n\nRun: {started}, `python -m bench.replay "
        f"--small-mb {args.small_mb} --large-gb {args.large_gb:g}{against}`.\n\n"
        f"Machine: {about}.\n\n"
        f"Input: `{FIXTURE.relative_to(REPO)}` (a real 6.18 host capture: 8,192 64 KiB "
        "folio unmaps in two MADV_PAGEOUT calls) repeated with shifted times; no stats. "
        "Rates are over the whole process, except the replay stage's (timed in process). "
        "Code `this` is the checkout's; `against` is the other install, measured in the same "
        "run.\n\n" + table + f"\n{END}"
    )
    print(section)
    write_section(section, BEGIN, END)


if __name__ == "__main__":
    main()
