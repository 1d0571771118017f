"""The memcg reclaim call's own cost on this machine (bench/costs/memcg_calls.py, on the
committed force_empty measurements): at least 5 runs per scenario, the fit judged by its
leave-one-out errors, and the figures bench/RESULTS.md reports."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest
from folio_replay.replay.costs.tables import load_table

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def memcg_calls():
    sys.path.insert(0, str(ROOT))  # bench.run, as `python -m bench.costs.memcg_calls` has it
    spec = importlib.util.spec_from_file_location(
        "memcg_calls", ROOT / "bench/costs/memcg_calls.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_call_cost_comes_from_repeated_runs_with_leave_one_out(memcg_calls) -> None:
    rows = pd.read_csv(memcg_calls.DATA)
    runs = rows.groupby("scenario").size()
    assert len(runs) == 8 and runs.min() >= 5
    # the calls per write follow the folios: one per 2 x 64 KiB (32 pages) or per PMD THP,
    # plus the retries of the loop's end
    mthp = rows[rows["folio_kb"] == 64]
    assert (mthp["calls"] >= mthp["folios"] // 2).all()
    result = memcg_calls.fit(rows)
    assert result["call_ns"] == pytest.approx(4610, rel=0.01)
    assert result["write_ns"] == pytest.approx(1003e3, rel=0.01)
    loo = result["scenarios"]["loo_error"]
    assert float((loo**2).mean() ** 0.5) == pytest.approx(0.20, abs=0.01)
    assert "**4.61 µs per memcg reclaim call**" in (ROOT / "bench/RESULTS.md").read_text()
    # the x86 table holds it, as measured here
    call = load_table("x86").ops["memcg_reclaim_call"]
    assert call.kind == "measured" and call.ns == pytest.approx(result["call_ns"], abs=0.5)
