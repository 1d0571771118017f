#!/usr/bin/env python3
"""Run the unmap microbenchmarks of bench/costs/scenarios.toml on this machine and measure
every MADV_PAGEOUT on the tracefs clock.

As root, with the repository's venv (folio_replay reads the traces):
``.venv/bin/python bench/costs/measure.py [--scenario NAME]... [--reps N] [--raw DIR]``.

For each scenario: the THP sizes and a zram swap are set as the scenario says;
``unmap_bench`` runs its repetitions in a private tracefs instance (trace clock ``local``, pid
filter on the benchmark's threads, the scenario's events) whose buffer is saved with
``trace-cmd extract`` (ns timestamps) under ``--raw``, with one line per run in
``manifest.jsonl`` (arguments, the durations unmap_bench measured itself, load average before
and after, whether a QEMU ran). The scenario list is run ``--rounds`` times, interleaved, so
that slow drifts of the machine's load hit every scenario alike. ``bench/costs/summarize.py
--raw DIR`` turns the traces into the committed CSV files.

Everything changed is put back on exit, also on failure or Ctrl-C: THP sizes (under the lock
tests/test_capture.py and fixtures/host take), zram (reset); the instance is removed and the
private tracefs mount this script makes is unmounted.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import fnmatch
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
THP = Path("/sys/kernel/mm/transparent_hugepage")
ZRAM = Path("/sys/block/zram0")
LOCK = Path("/run/lock/folio-replay-mthp.lock")
FILE = Path("/var/tmp/folio-costs-unmap-bench.dat")
CAPTURE_EVENTS = REPO / "folio_replay" / "capture" / "events.toml"


def write(path: Path, value: str) -> None:
    path.write_text(value if value.endswith("\n") else value + "\n")


def choice(path: Path) -> str:
    """The bracketed choice of a THP ``enabled`` file."""
    text = path.read_text()
    return text[text.index("[") + 1 : text.index("]")]


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def qemu_running() -> bool:
    out = subprocess.run(["pgrep", "-f", "qemu-system"], capture_output=True, text=True)
    return bool(out.stdout.strip())


class Machine(contextlib.ExitStack):
    """The global settings a scenario changes, each restored on exit (LIFO)."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = None
        self.thp_saved: dict[Path, str] | None = None
        self.zram_on = False

    def take_lock(self) -> None:
        LOCK.parent.mkdir(parents=True, exist_ok=True)
        self.lock = open(LOCK, "w")  # noqa: SIM115 - held for the whole session
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        self.callback(self.lock.close)

    def private_tracefs(self) -> Path:
        """tracefs mounted at a private mount point for this session (instances are shared by
        every tracefs mount, so another job mounting or unmounting /sys/kernel/tracing meanwhile
        changes nothing here); unmounted on exit."""
        where = Path(self.enter_context(tempfile.TemporaryDirectory(prefix="folio-costs-")))
        subprocess.run(["mount", "-t", "tracefs", "nodev", str(where)], check=True)
        self.callback(subprocess.run, ["umount", str(where)], check=False)
        return where

    def save_thp(self) -> None:
        files = [THP / "enabled", *sorted(THP.glob("hugepages-*kB/enabled"))]
        self.thp_saved = {f: choice(f) for f in files}

        def restore() -> None:
            for f, value in self.thp_saved.items():
                with contextlib.suppress(OSError):
                    write(f, value)

        self.callback(restore)

    def set_thp(self, sizes: list) -> None:
        """Only ``sizes`` (KiB) enabled; "pmd": the top level always, 2048 kB inherit."""
        pmd = "pmd" in sizes
        write(THP / "enabled", "always" if pmd else "never")
        for f in sorted(THP.glob("hugepages-*kB/enabled")):
            kib = int(f.parent.name.removeprefix("hugepages-").removesuffix("kB"))
            if pmd and kib == 2048:
                write(f, "inherit")
            else:
                write(f, "always" if kib in sizes else "never")

    def zram(self, on: bool) -> None:
        if on and not self.zram_on:
            if subprocess.run(
                ["swapon", "--show=NAME", "--noheadings"], capture_output=True, text=True
            ).stdout.strip():
                sys.exit("measure.py: a swap device is active; the swap scenario needs zram alone")
            if ZRAM.joinpath("disksize").read_text().strip() != "0":
                sys.exit("measure.py: /dev/zram0 is in use")
            self.callback(self._zram_off)
            write(ZRAM / "comp_algorithm", "lz4")
            write(ZRAM / "disksize", str(512 << 20))
            subprocess.run(["mkswap", "/dev/zram0"], check=True, capture_output=True)
            subprocess.run(["swapon", "/dev/zram0"], check=True)
            self.zram_on = True
        elif not on and self.zram_on:
            self._zram_off()

    def _zram_off(self) -> None:
        if self.zram_on:
            subprocess.run(["swapoff", "/dev/zram0"], check=False)
            write(ZRAM / "reset", "1")
            self.zram_on = False


def capture_events(instance: Path) -> list[str]:
    """folio-replay capture's default events that this kernel has, wildcards expanded."""
    wanted = tomllib.loads(CAPTURE_EVENTS.read_text())["events"]
    found = []
    for entry in wanted:
        system, name = entry.split(":")
        base = instance / "events" / system
        if base.is_dir():
            found += [
                f"{system}/{d.name}"
                for d in sorted(base.iterdir())
                if d.is_dir() and fnmatch.fnmatch(d.name, name)
            ]
    return found


def run_traced(
    tracefs: Path, bench: Path, args: list[str], events: str, raw: Path
) -> tuple[Path, str]:
    """Run the benchmark in a private instance; its buffer saved to ``raw`` (trace.dat)."""
    name = f"folio-costs-{os.getpid()}"
    inst = tracefs / "instances" / name
    inst.mkdir()
    try:
        write(inst / "tracing_on", "0")
        write(inst / "buffer_size_kb", "65536")
        write(inst / "trace_clock", "local")
        write(inst / "options/event-fork", "1")
        chosen = [
            f"syscalls/sys_{edge}_{call}"
            for call in ("madvise", "process_madvise")
            for edge in ("enter", "exit")
        ]
        if events == "full":
            chosen = capture_events(inst)
        elif events == "zap":
            chosen.append("tlb/tlb_flush")
        for ev in chosen:
            write(inst / "events" / ev / "enable", "1")
        wrapper = 'echo $$ > "$1/set_event_pid"; echo 1 > "$1/tracing_on"; shift; exec "$@"'
        out = subprocess.run(
            ["sh", "-c", wrapper, "sh", str(inst), str(bench), *args],
            capture_output=True,
            text=True,
            check=True,
        )
        write(inst / "tracing_on", "0")
        raw.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["trace-cmd", "extract", "-B", name, "-o", str(raw)],
            check=True,
            capture_output=True,
        )
        return raw, out.stdout
    finally:
        if inst.exists():
            with contextlib.suppress(OSError):
                write(inst / "tracing_on", "0")
            for ev in (inst / "events").glob("*/*/enable"):
                with contextlib.suppress(OSError):
                    if ev.read_text().strip() != "0":
                        write(ev, "0")
            with contextlib.suppress(OSError):
                inst.rmdir()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", help="only these scenarios")
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="run the scenario list this many times, interleaved (default 5)",
    )
    parser.add_argument("--reps", type=int, help="repetitions per run (default: scenarios.toml)")
    parser.add_argument(
        "--raw",
        type=Path,
        default=Path("/work/cost-runs"),
        help="where the trace.dat files and the manifest go (not committed)",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("measure.py: must run as root")
    for sig in (signal.SIGTERM, signal.SIGHUP):  # unwind the ExitStack: settings restored
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    spec = tomllib.loads((HERE / "scenarios.toml").read_text())
    defaults = spec["defaults"]
    scenarios = [s for s in spec["scenario"] if not args.scenario or s["name"] in args.scenario]
    if args.scenario and len(scenarios) != len(set(args.scenario)):
        sys.exit(f"measure.py: unknown scenario in {args.scenario}")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    raw_dir = args.raw / stamp
    raw_dir.mkdir(parents=True)
    manifest = raw_dir / "manifest.jsonl"
    with tempfile.TemporaryDirectory() as tmp, Machine() as machine:
        bench = Path(tmp) / "unmap_bench"
        subprocess.run(
            ["gcc", "-O2", "-static", "-pthread", "-o", str(bench), str(HERE / "unmap_bench.c")],
            check=True,
        )
        machine.take_lock()
        tracefs = machine.private_tracefs()
        machine.save_thp()
        machine.callback(lambda: FILE.unlink(missing_ok=True))
        for round_ in range(args.rounds):
            for s in scenarios:
                sc = {**defaults, **s}
                machine.set_thp(sc.get("mthp", []))
                machine.zram(bool(sc.get("zram", False)))
                reps = args.reps or int(sc["reps"])
                bench_args = [*sc["args"], "-s", str(sc["size_kib"]), "-r", str(reps)]
                if bench_args[bench_args.index("-m") + 1] == "file":
                    bench_args += ["-f", str(FILE)]
                before, qemu = loadavg(), qemu_running()
                started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                raw = raw_dir / f"{sc['name']}.r{round_}.dat"
                _, stdout = run_traced(tracefs, bench, bench_args, sc["events"], raw)
                record = {
                    "scenario": sc["name"],
                    "round": round_,
                    "raw": raw.name,
                    "events": sc["events"],
                    "args": bench_args,
                    "bench_ns": [
                        int(line.split("pageout_ns=")[1])
                        for line in stdout.splitlines()
                        if "pageout_ns=" in line
                    ],
                    "loadavg_before": before,
                    "loadavg_after": loadavg(),
                    "qemu_running": qemu,
                    "started_utc": started,
                    "kernel": platform.release(),
                }
                with open(manifest, "a") as fh:
                    fh.write(json.dumps(record) + "\n")
                print(
                    f"round {round_} {sc['name']}: load {before} -> "
                    f"{record['loadavg_after']}, qemu {'yes' if qemu else 'no'}",
                    flush=True,
                )
        machine.zram(False)
    print(
        f"traces and manifest in {raw_dir}; summarise with bench/costs/summarize.py --raw {raw_dir}"
    )


if __name__ == "__main__":
    main()
