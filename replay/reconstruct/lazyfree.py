"""Lazyfree marking: each MADV_FREE call, its range, and the large folios it made lazyfree.

Evidence: the ``sys_enter_madvise``/``sys_exit_madvise`` pair (range, return value); the
caller's ledger folios alive at the call and, where the trace gives addresses (x86), inside the
range; ``mm_lru_insertion`` rows of the caller in the window whose flags lack ``b``
(anon, not swapbacked: lazyfree) — Linux 6.12 and later move lazyfree folios with
lru_lazyfree() without that event, so the count is often 0 and is corroboration only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from folio_replay.replay.reconstruct.coverage import Coverage
from folio_replay.replay.reconstruct.episodes import Windows
from folio_replay.replay.reconstruct.events import EventArrays
from folio_replay.replay.reconstruct.joins import group_runs
from folio_replay.replay.reconstruct.syscalls import CALL_COLUMNS, syscall_calls

__all__ = ["LAZYFREE_COLUMNS", "lazyfree_calls", "madvise_calls"]

LAZYFREE_COLUMNS = [
    "pid",
    "comm",
    "start_ns",
    "end_ns",
    "start_line",
    "end_line",
    "range_start",
    "range_len",
    "ret",
    "folios",
    "folio_sizes_kb",
    "lazyfree_insertions",
    "evidence",
]


def madvise_calls(events: EventArrays, behavior: str) -> pd.DataFrame:
    """The madvise calls with ``behavior`` (e.g. MADV_FREE), with their ranges."""
    if not events.has("sys_enter_madvise"):
        return pd.DataFrame(columns=[*CALL_COLUMNS, "behavior", "range_start", "range_len"])
    calls = syscall_calls(
        events,
        "madvise",
        {
            "behavior": "madvise.behavior",
            "range_start": "madvise.start",
            "range_len": "madvise.len",
        },
    )
    return calls[calls["behavior"] == behavior].reset_index(drop=True)


def lazyfree_calls(events: EventArrays, coverage: Coverage) -> pd.DataFrame:
    """One row per MADV_FREE call (``coverage``: the ledger folios the calls of
    :func:`madvise_calls` of MADV_FREE hold)."""
    calls = coverage.calls
    if calls.empty:
        return pd.DataFrame(columns=LAZYFREE_COLUMNS)
    counts = coverage.call_counts()
    per_call = coverage.call_sizes()
    size_text = [""] * len(calls)
    held = per_call.index.get_level_values(0).to_numpy()
    texts = [f"{size}:{n}" for size, n in zip(per_call.index.get_level_values(1), per_call)]
    _, starts, ends = group_runs(held)  # held is sorted: the runs in place
    for first, end in zip(starts.tolist(), ends.tolist()):
        size_text[held[first]] = ",".join(texts[first:end])
    all_addressed = coverage.all_addressed()
    lazy = _lazyfree_insertions(events, calls)
    return pd.DataFrame(
        {
            "pid": calls["pid"],
            "comm": calls["comm"],
            "start_ns": calls["start_ns"],
            "end_ns": calls["end_ns"],
            "start_line": calls["start_line"],
            "end_line": calls["end_line"],
            "range_start": calls["range_start"],
            "range_len": calls["range_len"],
            "ret": calls["ret"],
            "folios": counts,
            "folio_sizes_kb": size_text,
            "lazyfree_insertions": lazy,
            "evidence": [
                f"madvise lines {s}→{e}; "
                + (
                    "folios in range by fault address"
                    if a
                    else "caller's live folios (no addresses in this trace)"
                )
                + f"; {n} mm_lru_insertion without swapbacked"
                for s, e, a, n in zip(calls["start_line"], calls["end_line"], all_addressed, lazy)
            ],
        },
        columns=LAZYFREE_COLUMNS,
    )


def _lazyfree_insertions(events: EventArrays, calls: pd.DataFrame) -> np.ndarray:
    """Per call, mm_lru_insertion rows of the caller in its window that are anon and not
    swap-backed."""
    rows = events.rows("mm_lru_insertion")
    counts = np.zeros(len(calls), dtype=np.int64)
    if not len(rows):
        return counts
    windows = pd.DataFrame(
        {
            "pid": calls["pid"].to_numpy(),
            "start_seq": calls["enter_seq"].to_numpy(),
            "last_seq": np.where(calls["exit_seq"] >= 0, calls["exit_seq"], calls["enter_seq"]),
            "episode": np.arange(len(calls)),
        }
    )
    where = Windows(windows).locate(events.pid[rows], rows)
    codes, values = events.codes("lru_insertion.flags", rows)
    lazy_value = np.array(["a" in v and "b" not in v for v in values], dtype=bool)
    hit = (where >= 0) & lazy_value[codes]
    return np.bincount(where[hit], minlength=len(calls)).astype(np.int64)
