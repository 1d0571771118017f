"""The streamed replay (what ``folio-replay replay`` runs) writes the report the in-memory
:class:`~folio_replay.replay.analysis.Analysis` writes, however the trace is cut."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from folio_replay.replay.report import TABLES
from folio_replay.replay.stream import StreamedReplay, replay_report

from folio_replay import analyse

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
]
# row order may differ (a kept folio is written once a later segment settles it)
ORDER = {
    "folios": ["episode", "folio", "pfn", "address"],
    "predictions": ["model", "arch", "episode", "pid", "kind", "size_kb"],
}


def _table(report: Path, name: str) -> pd.DataFrame:
    frame = pd.read_parquet(report / f"{name}.parquet")
    if name in ORDER and len(frame):
        frame = frame.sort_values(ORDER[name], kind="stable").reset_index(drop=True)
    return frame


def _same_reports(bundle: Path, tmp_path: Path) -> StreamedReplay:
    analysis = analyse(bundle)
    analysis.write_report(tmp_path / "whole")
    # 64 KiB of text or 2,000 events at a time: every bundle is cut into many segments
    done = replay_report(
        bundle, tmp_path / "streamed", chunk_bytes=64 << 10, progress=False, feed_rows=2000
    )
    assert done.segments > 1
    assert (done.model, done.model_evidence) == (analysis.model, analysis.model_evidence)
    assert (done.episodes, done.folios) == (len(analysis.episodes), len(analysis.folios))
    for name in TABLES:
        whole, streamed = _table(tmp_path / "whole", name), _table(tmp_path / "streamed", name)
        pd.testing.assert_frame_equal(streamed, whole, check_dtype=False, obj=name)
        kept = pq.read_schema(tmp_path / "whole" / f"{name}.parquet").metadata
        got = pq.read_schema(tmp_path / "streamed" / f"{name}.parquet").metadata
        assert {k: v for k, v in got.items() if k.startswith(b"folio_replay.")} == {
            k: v for k, v in kept.items() if k.startswith(b"folio_replay.")
        }
    return done


@pytest.mark.parametrize("bundle", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_streamed_report_is_the_in_memory_one(bundle: Path, tmp_path: Path) -> None:
    _same_reports(bundle, tmp_path)


def test_a_trace_dat_bundle_streams_in_cpu_batches(tmp_path: Path) -> None:
    """A bundle of the host's trace.dat (its made_by script: fixtures/host/make_dat.sh), no
    stats: the report without validation, the same streamed as whole."""
    bundle = tmp_path / "dat-bundle"
    bundle.mkdir()
    meta = json.loads((HOST / "trace-v6.json").read_text())
    (bundle / "meta.json").write_text(json.dumps({**meta, "name": "trace-v6"}))
    shutil.copy(HOST / "trace-v6.dat", bundle / "trace.dat")
    _same_reports(bundle, tmp_path)
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
    """A thread that enters write() (a full pipe) or munmap() and is silent until the trace
    ends would keep every later row in one segment: after a feed of rows its call stops
    holding the cut and only its enter row is carried on. The report is still the in-memory
    one (the calls are open in both)."""
    source = BUNDLES / "x86_64" / "7.2.13+deb14-cloud-amd64" / "microbench"
    bundle = tmp_path / "blocked"
    bundle.mkdir()
    shutil.copy(source / "meta.json", bundle / "meta.json")
    shutil.copytree(source / "stats", bundle / "stats")
    with gzip.open(source / "trace.txt.gz", "rt") as fh:
        lines = fh.read().splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    stamp = lines[first].split("]", 1)[1].split()[1]  # "6.886231:"
    head = "[000] .....     " + stamp
    blocked = [
        f"          logger-99999   {head} sys_write(fd: 1, buf: 0x1, count: 0x1)\n",
        f"          reaper-99998   {head} sys_munmap(addr: 7f0000000000, len: 1000)\n",
    ]
    (bundle / "trace.txt").write_text("".join([*lines[: first + 1], *blocked, *lines[first + 1 :]]))
    (tmp_path / "reports").mkdir()
    done = _same_reports(bundle, tmp_path / "reports")
    # as many segments, within the one feed the silent calls hold the cut, as without them
    plain = replay_report(
        source, tmp_path / "plain", chunk_bytes=64 << 10, progress=False, feed_rows=2000
    )
    assert plain.segments >= 5
    assert done.segments >= plain.segments - 1
