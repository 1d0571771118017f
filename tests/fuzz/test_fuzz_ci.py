"""The bounded fuzz run of the test suite (fixed seed, 5,850 cases in about two minutes on two
CPUs) and every case that ever failed (``regressions.json``), each run in a worker process so
that a crash or a hang is a failure of the test rather than of the test run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .run import FAILURES, fuzz, run_requests
from .targets import seed_digest

SEED = 15
# cases per class: the slow classes (stats copies a bundle per case) get fewer
CI_CASES = {
    "text": 1200,
    "gzip": 900,
    "tracedat": 1200,
    "stats": 150,
    "meta": 900,
    "costs": 900,
    "outputs": 600,
}
REGRESSIONS = json.loads((Path(__file__).with_name("regressions.json")).read_text())


def test_regression_seeds_are_unchanged():
    """A regression case is edits of a seed: the seed must still be the same bytes."""
    assert REGRESSIONS
    assert [seed_digest(r["case"]) for r in REGRESSIONS] == [r["seed_sha256"] for r in REGRESSIONS]


def test_every_case_that_ever_failed():
    results = run_requests([{"case": r["case"]} for r in REGRESSIONS], jobs=2, timeout=120)
    failed = [(r["status"], r["detail"], r["request"]) for r in results if r["status"] in FAILURES]
    assert failed == []
    assert len(results) == len(REGRESSIONS)


@pytest.mark.parametrize("cls", list(CI_CASES))
def test_bounded_fuzz_run(cls):
    (report,) = fuzz({cls: CI_CASES[cls]}, SEED, jobs=2, timeout=120)
    failed = [(f["status"], f["detail"], f["request"]) for f in report.failed]
    assert failed == [], report.line()
    assert sum(report.counts.values()) == CI_CASES[cls]
    assert report.counts["accepted"] > 0 and report.counts["refused"] > 0
    assert report.peak_rss_kib < 2 << 20  # 2 GiB: no crafted size may run away with memory
