"""Side-by-side ingest benchmark; writes ``bench/RESULTS.md``.

Builds large inputs from the real fixtures (``bench/make_inputs.py``), puts each in the page
cache, and runs every reader in its own process under ``/usr/bin/time`` (wall time, peak RSS):

* text: ``wc -l`` (the I/O bound), the fast parser, the reference parser, a naive regex loop;
* trace.dat: the native decoder, ``trace-cmd report`` (to /dev/null);
* ``folio-replay parse`` (the whole command, start-up included) into Parquet: on the trace.dat,
  on a trace.dat of about a million events next to ``trace-cmd report``, and on a >= 5 GB text
  file (peak RSS); the inputs and their Parquet outputs are deleted afterwards.

The text input is a realistic mix: the nine host captures of one machine one after another.

Usage: python -m bench.run [--text-mb 300] [--dat-copies 400] [--stream-gb 5] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numba
import numpy as np
import pyarrow as pa

from bench.make_inputs import make_dat, make_text

REPO = Path(__file__).resolve().parents[1]
# the realistic mix: every host capture of one machine one after another (every reclaim path and
# folio kind the host bundles hold; every event type `capture` enables, syscalls included, in
# the proportions the captures have)
TEXT_MIX = sorted(REPO.glob("fixtures/bundles/host/6.18.44-fc-v1300/*/trace.txt.gz"))
DAT_FIXTURE = REPO / "fixtures/host/trace-v6.dat"
SMALL_DAT_COPIES = 68  # about a million events (14,860 per copy)
TIME = "/usr/bin/time"
KEPT_FROM = "## What the rows mean"  # RESULTS.md from here on is not this run's


def measure(argv: list[str], stdout_to_null: bool = False) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in KiB, stdout) of one command run under /usr/bin/time."""
    with tempfile.NamedTemporaryFile("r") as rep:
        proc = subprocess.run(
            [TIME, "-f", "%e %M", "-o", rep.name, *argv],
            stdout=subprocess.DEVNULL if stdout_to_null else subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        if proc.returncode != 0:
            raise SystemExit(f"{argv} failed: {proc.stderr.strip()[-500:]}")
        wall, rss = rep.read().split()[-2:]
    return float(wall), int(rss), (proc.stdout or "").strip()


def write_section(text: str, begin: str, end: str) -> None:
    """Put ``text`` (which starts with ``begin`` and ends with ``end``) in bench/RESULTS.md
    between those markers, replacing what was there (appended the first time)."""
    results = REPO / "bench" / "RESULTS.md"
    current = results.read_text() if results.exists() else ""
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        current = head + text + rest.split(end, 1)[1]
    else:
        current = current.rstrip("\n") + "\n\n" + text + "\n"
    results.write_text(current)


def py(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench.tool", *args]


def warm(path: Path) -> None:
    """Read a file once so that it is in the page cache."""
    with open(path, "rb") as fh:
        while fh.read(1 << 24):
            pass


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
        platform.processor(),
    )
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
    load = Path("/proc/loadavg").read_text().split()[:3]
    return (
        f"{cpu}, {os.cpu_count()} vCPUs, {mem / 2**20:.0f} GiB RAM, Linux "
        f"{platform.release()}; Python {platform.python_version()}, numpy {np.__version__}, "
        f"pyarrow {pa.__version__}, numba {numba.__version__}; load average at start "
        f"{' '.join(load)} (the 2 vCPUs are shared with other jobs)"
    )


def row(
    tool: str,
    inp: str,
    events: int,
    walls: list[float],
    rss_kib: int,
    inners: list[float] | None = None,
    note: str = "",
) -> str:
    """One table row: medians of the runs (and their range); the rate is over the in-process
    reading time when the tool reports it."""
    times = inners if inners else walls
    med = statistics.median(times)
    rate = f"{events / med / 1e6:.2f}" if events and med > 0 else "-"
    if len(times) > 1 and events:
        rate += f" ({events / max(times) / 1e6:.2f}-{events / min(times) / 1e6:.2f})"
    inner_s = f"{statistics.median(inners):.2f}" if inners else "-"
    if inners and len(inners) > 1:
        inner_s += f" ({min(inners):.2f}-{max(inners):.2f})"
    return (
        f"| {tool} | {inp} | {events:,} | {statistics.median(walls):.2f} | {inner_s} | "
        f"{rate} | {rss_kib / 1024:,.0f} | {note} |"
    )


def repeat(
    argv: list[str], runs: int = 3, stdout_to_null: bool = False
) -> tuple[list[float], int, list[str]]:
    """Run ``argv`` ``runs`` times, each in its own process: (wall seconds of each run, the
    largest peak RSS in KiB, the stdout of each run)."""
    walls, rss, outs = [], 0, []
    for _ in range(runs):
        wall, peak, out = measure(argv, stdout_to_null)
        walls.append(wall)
        rss = max(rss, peak)
        outs.append(out)
    return walls, rss, outs


def tracecmd_row(label: str, dat: Path, events: int) -> str:
    """``trace-cmd report`` of ``dat`` to /dev/null, 3 times."""
    walls, rss, _ = repeat(["trace-cmd", "report", "-i", str(dat)], stdout_to_null=True)
    return row("`trace-cmd report` > /dev/null", label, events, walls, rss)


def tool_row(name: str, label: str, argv: list[str], note: str = "", runs: int = 3) -> str:
    """Run a reader ``runs`` times, each in its own process."""
    walls, rss, outs = repeat(argv, runs)
    inners = [float(out.split()[1]) for out in outs]
    return row(name, label, int(outs[-1].split()[0]), walls, rss, inners, note)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--text-mb", type=float, default=300)
    ap.add_argument("--dat-copies", type=int, default=400)
    ap.add_argument("--stream-gb", type=float, default=5)
    ap.add_argument("--work", default=tempfile.gettempdir())
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="folio-bench-", dir=args.work))
    started = machine()
    rows = []
    try:
        # compile (or load) the text reader's numba kernels and read the trace.dat fixture once,
        # outside the timings
        subprocess.run(
            py("fast-text", str(REPO / "fixtures/host/tracefs-trace.txt.gz")),
            check=True,
            capture_output=True,
            cwd=REPO,
        )
        subprocess.run(
            py("native-dat", str(DAT_FIXTURE)), check=True, capture_output=True, cwd=REPO
        )

        text = work / "trace.txt"
        info = make_text([str(f) for f in TEXT_MIX], str(text), int(args.text_mb * 2**20))
        lines = info["lines"]
        label = f"tracefs text {info['bytes'] / 2**20:,.0f} MiB"
        warm(text)
        wall, rss, _ = measure(["wc", "-l", str(text)])
        rows.append(row("`wc -l` (I/O bound)", label, lines, [wall], rss, note="lines, not events"))
        for tool, name, runs in (
            ("fast-text", "folio-replay fast parser, whole table in memory", 3),
            ("text-batches", "folio-replay fast parser, chunks dropped as they come", 3),
            ("reference-text", "reference parser (folio_replay.parsers.text.reference)", 1),
            ("naive-regex", "naive regex loop", 1),
        ):
            rows.append(tool_row(name, label, py(tool, str(text)), runs=runs))
        text.unlink()

        dat = work / "trace.dat"
        make_dat(str(DAT_FIXTURE), str(dat), args.dat_copies)
        warm(dat)
        label = f"trace.dat v6 {dat.stat().st_size / 2**20:,.0f} MiB"
        rows.append(
            tool_row(
                "folio-replay native trace.dat decoder, whole table in memory",
                label,
                py("native-dat", str(dat)),
            )
        )
        events = int(rows[-1].split("|")[3].replace(",", ""))
        rows.append(
            tool_row(
                "folio-replay native trace.dat decoder, batches dropped as they come",
                label,
                py("dat-batches", str(dat)),
                note=f"{os.cpu_count()} render threads",
            )
        )
        rows.append(tool_row("the same, one render thread", label, py("dat-batches-1t", str(dat))))
        rows.append(tracecmd_row(label, dat, events))
        rows.append(parse_row(label, dat, work / "dat.parquet", events))
        dat.unlink()

        # about a million events: `folio-replay parse` (start-up included) against trace-cmd
        small = work / "small.dat"
        make_dat(str(DAT_FIXTURE), str(small), SMALL_DAT_COPIES)
        warm(small)
        label = f"trace.dat v6 {small.stat().st_size / 2**20:,.0f} MiB"
        parsed = parse_row(label, small, work / "small.parquet", None)
        events = int(parsed.split("|")[3].replace(",", ""))
        rows += [tracecmd_row(label, small, events), parsed]
        small.unlink()

        if args.stream_gb:
            big = work / "big.txt"
            info = make_text([str(f) for f in TEXT_MIX], str(big), int(args.stream_gb * 2**30))
            label = f"tracefs text {info['bytes'] / 2**30:,.2f} GiB"
            out_pq = work / "big.parquet"
            warm(big)
            rows.append(parse_row(label, big, out_pq, None, runs=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_results(started, rows, args)


def parse_row(label: str, trace: Path, out: Path, events: int | None, runs: int = 3) -> str:
    """The whole ``folio-replay parse TRACE -o OUT --force`` command, ``runs`` times: wall time
    and peak RSS of the process, events as it reports them."""
    cli = str(Path(sys.executable).with_name("folio-replay"))
    walls, rss, said = repeat([cli, "parse", str(trace), "-o", str(out), "--force"], runs)
    size = out.stat().st_size
    out.unlink()
    counted = int(said[-1].split(": ", 1)[1].split(" events", 1)[0])
    if events is not None and counted != events:
        raise SystemExit(f"{trace}: parse found {counted} events, not {events}")
    return row(
        "`folio-replay parse` (whole command, to Parquet)",
        label,
        counted,
        walls,
        rss,
        note=f"Parquet {size / 2**20:,.0f} MiB",
    )


def write_results(started: str, rows: list[str], args) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = "\n".join(
        [
            "# Ingest benchmark",
            "",
            f"Latest run: {stamp}, `python -m bench.run --text-mb {args.text_mb:g} "
            f"--dat-copies {args.dat_copies} --stream-gb {args.stream_gb:g}`.",
            "",
            f"Machine: {started}.",
            "",
            "Inputs are real captures repeated with shifted times (`bench/make_inputs.py`): the "
            f"tracefs text of the {len(TEXT_MIX)} host bundles of "
            "`fixtures/bundles/host/6.18.44-fc-v1300/` "
            "one after another (a realistic mix: every event type `capture` enables, syscalls "
            "included, in the captures' proportions) and the pages of "
            "`fixtures/host/trace-v6.dat`. Each file is read once before it is timed (page cache). "
            "Every reader runs in its own process; time is wall time of the whole process "
            "(interpreter start, imports, the text reader's numba cache load included); RSS is "
            'its peak (`/usr/bin/time`). "read s" is the reading alone, timed inside the process '
            "after imports and after one small fixture was read (which loads the text reader's "
            "compiled numba kernels from their cache; the trace.dat loops are C, compiled at "
            "install); events/s is over that time where it is given. Readers run 3 times "
            "(medians, range in parentheses) except the slow baselines and the Parquet runs.",
            "",
            "| reader | input | events | process s | read s | M events/s | peak RSS MiB | note |",
            "|---|---|---:|---:|---:|---:|---:|---|",
            *rows,
            "",
        ]
    )
    results = REPO / "bench" / "RESULTS.md"
    # the sections after the ingest table (what the rows mean, the fleet and replay runs) stay
    old = results.read_text() if results.exists() else ""
    kept = old[old.index(KEPT_FROM) :] if KEPT_FROM in old else ""
    results.write_text(body + ("\n" + kept if kept else ""))
    print(body)


if __name__ == "__main__":
    main()
