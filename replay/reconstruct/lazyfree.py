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
from folio_replay.replay.reconstruct.episodes import Windows
from folio_replay.replay.reconstruct.events import EventArrays
from folio_replay.replay.reconstruct.syscalls import CALL_COLUMNS, syscall_calls

__all__ = ["LAZYFREE_COLUMNS", "covering_calls", "lazyfree_calls", "madvise_calls"]

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


def covering_calls(ledger: pd.DataFrame, calls: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(folio row, call row) pairs: the call (by any thread of the folio's process) came while
    the folio was allocated and its range holds the folio (a folio without an address is held
    by every range of its process). Computed per process from the folio side with sorted
    searches."""
    folio_rows, call_rows = [], []
    if calls.empty or ledger.empty:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    alloc = ledger["alloc_seq"].to_numpy()
    end = ledger["end_seq"].to_numpy()
    end = np.where(end < 0, np.iinfo(np.int64).max, end)
    call_seq = calls["enter_seq"].to_numpy()
    for process, mine in ledger.groupby("process").indices.items():
        theirs = np.flatnonzero(calls["process"].to_numpy() == process)
        if not len(theirs):
            continue
        theirs = theirs[np.argsort(call_seq[theirs], kind="stable")]
        seqs = call_seq[theirs]
        lo = np.searchsorted(seqs, alloc[mine], "right")
        hi = np.searchsorted(seqs, end[mine], "left")
        count = np.maximum(hi - lo, 0)
        folio_rows.append(np.repeat(mine, count))
        offsets = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        call_rows.append(theirs[np.repeat(lo, count) + offsets])
    folio_idx = np.concatenate(folio_rows) if folio_rows else np.empty(0, np.int64)
    call_idx = np.concatenate(call_rows) if call_rows else np.empty(0, np.int64)
    address = ledger["address"].to_numpy(dtype=np.float64, na_value=np.nan)[folio_idx]
    size = ledger["size_kb"].to_numpy()[folio_idx] * 1024
    start = calls["range_start"].to_numpy()[call_idx]
    length = calls["range_len"].to_numpy()[call_idx]
    inside = np.isnan(address) | ((address >= start) & (address + size <= start + length))
    return folio_idx[inside], call_idx[inside]


def lazyfree_calls(events: EventArrays, ledger: pd.DataFrame, calls: pd.DataFrame) -> pd.DataFrame:
    """One row per MADV_FREE call (``calls``: :func:`madvise_calls` of MADV_FREE)."""
    if calls.empty:
        return pd.DataFrame(columns=LAZYFREE_COLUMNS)
    folio_idx, call_idx = covering_calls(ledger, calls)
    counts = np.bincount(call_idx, minlength=len(calls))
    sizes = ledger["size_kb"].to_numpy()[folio_idx]
    per_call = pd.DataFrame({"call": call_idx, "size": sizes}).value_counts().sort_index()
    size_text = [""] * len(calls)
    for call, group in per_call.groupby(level=0):
        size_text[call] = ",".join(f"{size}:{n}" for (_, size), n in group.items())
    addressed = ledger["address"].notna().to_numpy()
    all_addressed = np.ones(len(calls), dtype=bool)
    np.logical_and.at(all_addressed, call_idx, addressed[folio_idx])
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
            "end_seq": np.where(calls["exit_seq"] >= 0, calls["exit_seq"], calls["enter_seq"]),
            "episode": np.arange(len(calls)),
        }
    )
    where = Windows(windows, events.n - 1).locate(events.pid[rows], rows)
    codes, values = events.codes("lru_insertion.flags", rows)
    lazy_value = np.array(["a" in v and "b" not in v for v in values], dtype=bool)
    hit = (where >= 0) & lazy_value[codes]
    return np.bincount(where[hit], minlength=len(calls)).astype(np.int64)
