"""Replay benchmark of the traces whose cost is not in their folios: many calls over live
folios (munmap, MADV_FREE and the like) and many small reclaim episodes (a memcg at its
limit); writes its table into ``bench/RESULTS.md``.

Each input is a real lab capture's trace repeated with shifted times
(:func:`bench.make_inputs.make_text`) to about ``--mb`` MiB of text, with its meta.json and no
stats. Each run is its own process under ``/usr/bin/time`` (interpreter start and imports
included): ``folio-replay replay`` (streamed) and ``analyse()`` + ``write_report()`` (in
memory). ``--against PYTHON`` runs every row with a second interpreter too, run for run
alternately (e.g. an install of the previous commit): the change side by side with today's.

The memcg input is also streamed at ``--episodes-mb`` MiB (tens of thousands of episodes):
the models' bounds grow with the episodes, so that row shows whether memory does.

Usage: python -m bench.replay_mixes [--mb 64] [--episodes-mb 640] [--against PYTHON]
       [--work DIR] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench.replay import (
    IN_MEMORY,
    REPO,
    STREAMED,
    add_side_by_side,
    interpreters,
    make_bundle,
    measured,
    replay_argv,
)
from bench.run import machine, warm, write_section

BEGIN, END = "<!-- bench/replay_mixes.py: begin -->", "<!-- bench/replay_mixes.py: end -->"
LAB = REPO / "fixtures/bundles"
# (the capture, what makes it costly)
INPUTS = (
    (
        "x86_64/6.12.117+deb13-cloud-amd64/partial-munmap",
        "2,048 munmap calls, each cutting a live 64 KiB folio (fault addresses)",
    ),
    (
        "aarch64/6.12.117+deb13-cloud-arm64/partial-munmap",
        "the same on arm64: no fault addresses, every call of the process holds every live folio",
    ),
    (
        "x86_64/6.12.118+deb13-cloud-amd64/memcg-limit-64k",
        "33 memcg-limit reclaim episodes of 4 folios each",
    ),
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=64, help="MiB of trace text per input")
    parser.add_argument(
        "--episodes-mb",
        type=int,
        default=640,
        help="MiB of the many-episode (memcg) input, streamed only (0: not run)",
    )
    add_side_by_side(parser)
    args = parser.parse_args(argv)
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    about = machine()
    codes = interpreters(args.against)
    work = Path(tempfile.mkdtemp(prefix="replay-mixes-", dir=args.work))
    rows: list[str] = []
    try:
        runs = [(name, why, args.mb, True) for name, why in INPUTS]
        if args.episodes_mb:
            runs.append((*INPUTS[-1], args.episodes_mb, False))
        for i, (name, why, mb, in_memory) in enumerate(runs):
            bundle = work / f"in{i}"
            made = make_bundle(bundle, mb << 20, LAB / name, "bench/replay_mixes.py")
            size = (bundle / "trace.txt").stat().st_size
            warm(bundle / "trace.txt")
            label = f"`{name}` x{made['copies']}: {why}"
            paths = [(STREAMED, replay_argv(bundle, work / "r"), work / "r")]
            if in_memory:
                paths.append(
                    (
                        "in memory: `analyse()` + `write_report()`",
                        ["-c", IN_MEMORY, str(bundle), str(work / "m")],
                        work / "m",
                    )
                )
            for path, run_argv, report in paths:
                rows += [
                    line.replace("| ", f"| {label}; ", 1)
                    for line in measured(codes, path, run_argv, report, size)
                ]
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    table = "\n".join(
        [
            "| input; path | code | trace text | events | folio unmaps | process s | "
            "M events/s | k folios/s | peak RSS MiB |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )
    against = f" --against {args.against}" if args.against else ""
    section = (
        f"{BEGIN}\n## Replay of many calls and many episodes (bench/replay_mixes.py)\n\n"
        f"Run: {started}, `python -m bench.replay_mixes --mb {args.mb} "
        f"--episodes-mb {args.episodes_mb}{against}`.\n\n"
        f"Machine: {about}.\n\n"
        "Inputs: real lab captures repeated with shifted times; no stats. Rates are over the "
        "whole process. Code `this` is the checkout's; `against` is the other install, "
        "measured in the same run.\n\n" + table + f"\n{END}"
    )
    print(section)
    write_section(section, BEGIN, END)


if __name__ == "__main__":
    main()
