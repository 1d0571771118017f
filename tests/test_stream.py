"""The streamed replay (what ``folio-replay replay`` runs) writes the report the in-memory
:class:`~folio_replay.replay.analysis.Analysis` writes, however the trace is cut."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from folio_replay.replay.predict import merge_bounds, replay_folios
from folio_replay.replay.spilled_bounds import SpilledBounds
from folio_replay.replay.stream import replay_report
from same_reports import same_reports

from folio_replay import analyse, load_bundle

BUNDLES = Path(__file__).resolve().parents[1] / "fixtures" / "bundles"
HOST = Path(__file__).resolve().parents[1] / "fixtures" / "host"
# many episodes (memcg limit reclaim), every kind, a kept (redirtied) folio freed later, x86
# flushes
CASES = [
    BUNDLES / "host" / "6.18.44-fc-v1300" / "go-memcg",
    BUNDLES / "host" / "6.18.44-fc-v1300" / "mixed-kinds",
    BUNDLES / "aarch64" / "6.12.117+deb13-cloud-arm64" / "redirty-first-64k",
    BUNDLES / "x86_64" / "7.2.13+deb14-cloud-amd64" / "microbench",
    # clean lazyfree PMD THPs discarded whole in several memcg episodes: the deposited tables'
    # frees that tell a PMD discard from a split are counted per segment
    BUNDLES / "aarch64" / "7.0.4+deb13-cloud-arm64" / "memcg-limit-pmd",
    # write-protect faults after a fork split each folio's PTEs into write runs: the faults
    # are carried into the segment that reclaims their folios
    BUNDLES / "host" / "6.18.44-fc-v1300" / "cow-after-fork",
    # a process's copy-on-write row whose faults fall in two segments: one row, merged
    BUNDLES / "x86_64" / "6.12.118+deb13-cloud-amd64" / "cow-after-fork-64k",
    # munmap cuts the trace cannot name (no fault addresses) in one segment, the MADV_FREE that
    # splits the cut folios in a later one: counted once, and its folios still covered
    BUNDLES / "aarch64" / "6.12.117+deb13-cloud-arm64" / "partial-munmap",
    # records split with no swap device, their folios freed in a later segment: the evidence
    # tells how the folio ended
    BUNDLES / "host" / "6.18.44-fc-v1300" / "noswap-pageout-anon",
]


@pytest.mark.parametrize("bundle", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_streamed_report_is_the_in_memory_one(bundle: Path, tmp_path: Path) -> None:
    same_reports(bundle, tmp_path)


@pytest.mark.parametrize("bundle", [CASES[0], CASES[2]], ids=["go-memcg", "redirty-first-64k"])
def test_bounds_spilled_to_disk_give_the_same_report(bundle: Path, tmp_path: Path) -> None:
    """The models' bounds written to disk every 64 rows (a trace of many episodes writes them
    every 65,536): summed back per model and arch at the end, with the kept folios' rows that
    later segments settle into earlier episodes, they give the in-memory report."""
    same_reports(bundle, tmp_path, spill_rows=64)


def test_a_trace_dat_bundle_streams_in_cpu_batches(tmp_path: Path) -> None:
    """A bundle of the host's trace.dat (its made_by script: fixtures/host/make_dat.sh), no
    stats: the report without validation, the same streamed as whole."""
    bundle = tmp_path / "dat-bundle"
    bundle.mkdir()
    meta = json.loads((HOST / "trace-v6.json").read_text())
    (bundle / "meta.json").write_text(json.dumps({**meta, "name": "trace-v6"}))
    shutil.copy(HOST / "trace-v6.dat", bundle / "trace.dat")
    same_reports(bundle, tmp_path)
    assert pd.read_parquet(tmp_path / "streamed" / "validation.parquet").empty


def test_kept_folios_are_written_once_they_are_settled(tmp_path: Path) -> None:
    bundle = CASES[2]  # redirtied 64 KiB folios kept by reclaim, freed when the process exits
    replay_report(bundle, tmp_path / "r", chunk_bytes=64 << 10, progress=False)
    folios = pd.read_parquet(tmp_path / "r" / "folios.parquet")
    kept = folios[folios["outcome"] == "kept"]
    assert len(kept) == 2048
    assert kept["zapped_later"].all()
    assert kept["evidence"].str.startswith("mm_page_alloc").all()
    assert kept["evidence"].str.contains("; mm_page_free of the folio;", regex=False).all()


def test_a_thread_blocked_in_a_call_does_not_hold_the_trace_in_memory(tmp_path: Path) -> None:
    """A real capture in which `yes` fills a pipe nobody reads and blocks in write() while the
    microbench runs (`blocked-writer`, fixtures/host/make_host_kinds.sh): that open call kept
    every row after it in one segment. After a feed of rows in which its thread wrote nothing
    it stops holding the cut, its enter row is carried on to the segment that sees it return;
    the report is still the in-memory one."""
    bundle = BUNDLES / "host" / "6.18.44-fc-v1300" / "blocked-writer"
    trace = load_bundle(bundle).read_trace().table.to_pandas()
    events = len(trace)
    mine = trace[trace["comm"] == "yes"]
    writes = mine[mine["event"].isin(["sys_enter_write", "sys_exit_write"])]
    enter, leave = writes.index[-2:]  # its last write, blocked for most of the trace
    assert writes["event"].loc[[enter, leave]].tolist() == ["sys_enter_write", "sys_exit_write"]
    woken = mine.index[mine.index > enter][0]  # its next row: the pipe's reader has gone
    assert leave - enter > woken - enter > events // 2  # silent for most of the trace
    done = same_reports(bundle, tmp_path, feed_rows=500)
    # as many segments as feeds, but the one feed the silent call held the cut (2 before)
    assert done.segments >= events // 500 - 1


def test_chunks_are_fed_in_whole_feeds(tmp_path: Path) -> None:
    """Chunks of 64 KiB of text (about 600 events, never a multiple of the feed) are fed 2,000
    events at a time, a chunk's last rows waiting for the next: no segment is made of a
    chunk's remainder alone, so there are at most as many segments as feeds."""
    bundle = CASES[0]  # go-memcg: 308 memcg episodes, quiet between them
    events = load_bundle(bundle).read_trace().table.num_rows
    done = replay_report(
        bundle, tmp_path / "r", chunk_bytes=64 << 10, progress=False, feed_rows=2000
    )
    assert events > 10 * 2000
    assert events // 4000 < done.segments <= -(-events // 2000)


def test_spilled_bounds_are_read_back_whole_and_removed(tmp_path: Path) -> None:
    """Rows written every 64 are read back, per model and arch, as the in-memory table sums
    them; none may be added once read back (the file is complete), and closing removes it."""
    analysis = analyse(CASES[0])
    folios = analysis.folios
    half = folios["episode"] < folios["episode"].median()
    candidates = sorted(set(analysis.bounds.frame["model"]))
    whole = merge_bounds(
        replay_folios(folios[half], candidates, analysis.tables),
        replay_folios(folios[~half], candidates, analysis.tables),
    ).frame
    path = tmp_path / "bounds.parquet"
    with SpilledBounds(path, analysis.tables, spill_rows=64) as spill:
        spill.add(replay_folios(folios[half], candidates, analysis.tables))
        spill.add(replay_folios(folios[~half], candidates, analysis.tables))
        assert path.exists()
        for (model, arch), rows in whole.groupby(["model", "arch"]):
            got = spill.of(model, arch).frame
            pd.testing.assert_frame_equal(
                got[rows.columns].reset_index(drop=True),
                rows.reset_index(drop=True),
                check_dtype=False,
            )
        with pytest.raises(RuntimeError):
            spill.add(replay_folios(folios, candidates, analysis.tables))
    assert not path.exists()
