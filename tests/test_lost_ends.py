"""A window whose closing event the trace lost (a ring-buffer overrun) ends before its thread's
next syscall event, not with the trace: it no longer swallows the thread's later episodes, nor
holds a streamed trace in one segment.

The trace is a real host capture (`busy-microbench`: one thread, two MADV_PAGEOUT calls of
4,096 64 KiB folios each, made by fixtures/host/make_host_kinds.sh) with the line of the first
call's sys_exit_madvise removed, as an overrun removes it.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from folio_replay.replay.stream import replay_report
from same_reports import same_reports

from folio_replay import analyse

BUNDLE = (
    Path(__file__).resolve().parents[1]
    / "fixtures"
    / "bundles"
    / "host"
    / "6.18.44-fc-v1300"
    / "busy-microbench"
)


def _without_first_pageout_exit(tmp_path: Path) -> Path:
    """The bundle copied with its first MADV_PAGEOUT's exit line removed."""
    episodes = analyse(BUNDLE).episodes
    first = episodes.iloc[0]
    assert first["kind"] == "madvise_pageout"
    lost = int(first["end_line"])
    copy = tmp_path / "bundle"
    shutil.copytree(BUNDLE, copy)
    with gzip.open(BUNDLE / "trace.txt.gz", "rt") as f:
        lines = f.readlines()
    assert "sys_madvise -> " in lines[lost - 1]
    with gzip.open(copy / "trace.txt.gz", "wt") as f:
        f.writelines(lines[: lost - 1] + lines[lost:])
    return copy


def test_a_lost_exit_ends_the_call_at_its_threads_next_syscall(tmp_path: Path) -> None:
    whole = analyse(BUNDLE)
    bundle = _without_first_pageout_exit(tmp_path)
    damaged = analyse(bundle)
    episodes = damaged.episodes
    assert len(episodes) == len(whole.episodes) == 2
    assert episodes["nested"].tolist() == [0, 0]
    first = episodes.iloc[0]
    assert first["end_seq"] == -1 and pd.isna(first["end_ns"])
    # the window ends before the thread's next syscall event: its write() after the call
    events = damaged.recon.events
    following = int(first["last_seq"]) + 1
    assert events.event_names(np.array([following]))[0] == "sys_enter_write"
    assert events.pid[following] == first["pid"]
    assert f"syscall event at line {events.line[following]}" in first["evidence"]
    # every folio of both calls is where it was, and each is predicted as before (the
    # measured time aside: the first call's end is gone)
    assert damaged.folios.groupby("episode").size().tolist() == [4096, 4096]
    pd.testing.assert_frame_equal(
        damaged.predictions.drop(columns="traced_time_ns"),
        whole.predictions.drop(columns="traced_time_ns"),
    )


def test_a_lost_exit_does_not_hold_a_streamed_trace(tmp_path: Path) -> None:
    """The open call held every row after it in one segment; it is now cut as the intact
    trace is (feeds of 2,000 rows), into the same report."""
    bundle = _without_first_pageout_exit(tmp_path)
    done = same_reports(bundle, tmp_path, feed_rows=2000)
    intact = replay_report(
        BUNDLE, tmp_path / "intact", chunk_bytes=64 << 10, progress=False, feed_rows=2000
    )
    assert intact.segments > 10
    assert done.segments >= intact.segments - 1  # the call's own window is one segment
    assert done.episodes == 2
