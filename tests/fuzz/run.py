"""The fuzz driver: cases of each class run in worker processes (:mod:`.worker`), each case
watched for a crash (the worker dies by a signal), a hang (no answer within ``--timeout``)
and the oracles' failures (tracebacks, fast/reference differences, wrong values).

By hand (from the repository root)::

    python -m tests.fuzz.run --cases 10000 --seed 15 --jobs 2 --save failures.json

prints one line per class (cases, accepted, refused, crashes, tracebacks, hangs,
differences, wrong values, peak RSS of a worker, wall time) and writes every failing case
(replayable: add it to ``tests/fuzz/regressions.json``). Exit status 1 when any case failed.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .targets import CLASSES

REPO = Path(__file__).resolve().parents[2]
FAILURES = ("crash", "traceback", "hang", "difference", "wrong")


@dataclass
class Report:
    """What the cases of one class gave."""

    cls: str
    counts: Counter = field(default_factory=Counter)
    failed: list[dict] = field(default_factory=list)
    peak_rss_kib: int = 0
    seconds: float = 0.0
    slowest: float = 0.0

    def line(self) -> str:
        c = self.counts
        return (
            f"{self.cls:9} cases {sum(c.values()):6}  accepted {c['accepted']:6}  refused "
            f"{c['refused']:6}  crashes {c['crash']}  tracebacks {c['traceback']}  hangs "
            f"{c['hang']}  differences {c['difference']}  wrong {c['wrong']}  peak RSS "
            f"{self.peak_rss_kib / 1024:.0f} MiB  slowest case {self.slowest:.2f} s  wall "
            f"{self.seconds:.0f} s"
        )

    @property
    def failures(self) -> int:
        return sum(self.counts[k] for k in FAILURES)


class Worker:
    """One worker process and the request it is working on."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz.worker"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        self.request: dict | None = None
        self.deadline = 0.0
        self.rss_kib = 0

    def send(self, request: dict, timeout: float) -> None:
        assert self.proc.stdin is not None
        self.request = request
        self.deadline = time.monotonic() + timeout
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def run_requests(
    requests: list[dict], jobs: int = 2, timeout: float = 60.0, progress: bool = False
) -> list[dict]:
    """Run requests (each ``{"class", "seed", "index"}`` or ``{"case"}``) on ``jobs`` workers;
    one result per request (``status``: accepted, refused or a failure kind)."""
    pending = list(reversed(requests))
    results: list[dict] = []
    selector = selectors.DefaultSelector()
    workers: list[Worker] = []

    def start() -> None:
        worker = Worker()
        workers.append(worker)
        assert worker.proc.stdout is not None
        selector.register(worker.proc.stdout, selectors.EVENT_READ, worker)
        feed(worker)

    def feed(worker: Worker) -> None:
        if pending:
            worker.send(pending.pop(), timeout)
        else:
            worker.request = None

    def retire(worker: Worker, status: str, detail: str) -> None:
        assert worker.proc.stdout is not None and worker.request is not None
        selector.unregister(worker.proc.stdout)
        worker.stop()
        workers.remove(worker)
        results.append(
            {
                "status": status,
                "detail": detail,
                "request": worker.request,
                "rss_kib": worker.rss_kib,
                "seconds": timeout,
            }
        )
        start()

    for _ in range(min(jobs, len(pending))):
        start()
    while any(w.request is not None for w in workers):
        now = time.monotonic()
        wait = min(w.deadline for w in workers if w.request is not None) - now
        for key, _ in selector.select(max(wait, 0)):
            worker = key.data
            line = worker.proc.stdout.readline()
            if not line:  # the worker died: a crash of the code under test
                code = worker.proc.wait()
                retire(worker, "crash", f"worker exited with {code}")
                continue
            result = json.loads(line)
            worker.rss_kib = max(worker.rss_kib, result["rss_kib"])
            result["request"] = worker.request
            results.append(result)
            if progress and len(results) % 500 == 0:
                print(f"  {len(results)} cases", file=sys.stderr, flush=True)
            feed(worker)
        for worker in list(workers):
            if worker.request is not None and time.monotonic() > worker.deadline:
                retire(worker, "hang", f"no answer in {timeout} s")
    for worker in workers:
        worker.stop()
    return results


def fuzz(
    cases: dict[str, int], seed: int, jobs: int, timeout: float, progress: bool = False
) -> list[Report]:
    """``cases[cls]`` cases of each class ``cls``; a report per class."""
    reports = []
    for cls, count in cases.items():
        start = time.monotonic()
        requests = [{"class": cls, "seed": seed, "index": i} for i in range(count)]
        report = Report(cls)
        for result in run_requests(requests, jobs, timeout, progress):
            report.counts[result["status"]] += 1
            report.peak_rss_kib = max(report.peak_rss_kib, result["rss_kib"])
            report.slowest = max(report.slowest, result["seconds"])
            if result["status"] in FAILURES:
                report.failed.append(result)
        report.seconds = time.monotonic() - start
        reports.append(report)
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__)
    parser.add_argument("--cases", type=int, default=1000, help="cases per class")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a hang")
    parser.add_argument("--classes", default=",".join(CLASSES))
    parser.add_argument("--save", type=Path, help="write the failing cases here (JSON)")
    args = parser.parse_args(argv)
    cases = dict.fromkeys(args.classes.split(","), args.cases)
    reports = fuzz(cases, args.seed, args.jobs, args.timeout, progress=True)
    for report in reports:
        print(report.line(), flush=True)
    failed = [f for r in reports for f in r.failed]
    if args.save:
        args.save.write_text(json.dumps(failed, indent=1))
    for f in failed[:20]:
        print(f"{f['status']}: {f['detail'][:200]}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
