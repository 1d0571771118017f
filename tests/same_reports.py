"""A bundle's streamed report against its in-memory one (the streaming tests')."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from folio_replay.replay.report import TABLES
from folio_replay.replay.spilled_bounds import SPILL_ROWS
from folio_replay.replay.stream import StreamedReplay, replay_report

from folio_replay import analyse

__all__ = ["same_reports"]

# row order may differ (a record whose folio is alive is written once a later segment settles
# it; a process's copy-on-write row once the trace ends)
ORDER = {
    "folios": ["episode", "folio", "pfn", "address"],
    "partial": ["start_line", "call", "pid", "size_kb"],
    "predictions": ["model", "arch", "episode", "pid", "kind", "size_kb"],
}


def _table(report: Path, name: str) -> pd.DataFrame:
    frame = pd.read_parquet(report / f"{name}.parquet")
    if name in ORDER and len(frame):
        frame = frame.sort_values(ORDER[name], kind="stable").reset_index(drop=True)
    return frame


def same_reports(
    bundle: Path, tmp_path: Path, feed_rows: int | None = None, spill_rows: int = SPILL_ROWS
) -> StreamedReplay:
    analysis = analyse(bundle)
    analysis.write_report(tmp_path / "whole")
    # 64 KiB of text at a time, fed 2,000 events (feed_rows) at a time, or an eighth of a
    # small trace: every bundle is cut into many segments
    if feed_rows is None:
        feed_rows = min(2000, max(32, analysis.recon.events.n // 8))
    done = replay_report(
        bundle,
        tmp_path / "streamed",
        chunk_bytes=64 << 10,
        progress=False,
        feed_rows=feed_rows,
        spill_rows=spill_rows,
    )
    assert sorted(p.name for p in (tmp_path / "streamed").iterdir()) == sorted(
        p.name for p in (tmp_path / "whole").iterdir()
    )  # the bounds spilled on the way are gone
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
