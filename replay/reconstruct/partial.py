"""Genuine partial unmaps: munmap or MADV_DONTNEED of part of a large folio, apart from reclaim.

Such a call leaves the folio partially mapped: deferred_split_folio() queues it and counts
``split_deferred`` for its size once (plus ``thp_deferred_split_page`` for PMD-sized folios,
after ``thp_split_pmd`` splits the PMD mapping) — on every kernel, batched or not.

Evidence: with addresses (x86 ``page_fault_user``) a folio is partially unmapped when the range
overlaps it without covering it. Without addresses: the caller's MM_ANONPAGES pages removed in
the window minus the user pages freed in it are pages of folios that stayed allocated; a range can
cut at most two folios (its head and its tail), so the count is bounded by [1, min(2, pages)],
exact when a single page stayed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from folio_replay.replay.reconstruct.ledger import USER_GFP_MARKERS, alive_at
from folio_replay.replay.reconstruct.syscalls import syscall_windows
from folio_replay.replay.reconstruct.unmaps import PAGE_SIZE, PMD_ORDER

PARTIAL_COLUMNS = [
    "pid",
    "call",
    "start_ns",
    "start_line",
    "end_line",
    "range_start",
    "range_len",
    "size_kb",
    "partial_low",
    "partial_high",
    "pmd_mapped",
    "evidence",
]


def user_page_pfns(events: pd.DataFrame) -> set[int]:
    """pfns ever allocated as user pages: frees of other pfns in a call's window are kernel
    memory (page tables, maple-tree nodes, slabs) freed in the caller's context."""
    allocs = events[events["event"] == "mm_page_alloc"]
    user = allocs["page.gfp_flags"].fillna("").str.contains("|".join(USER_GFP_MARKERS))
    return set(allocs[user]["page.pfn"].astype(int))


class _PidSeries:
    """Per-pid time series of MM_ANONPAGES sizes and user-page frees, for fast windows."""

    def __init__(self, events: pd.DataFrame) -> None:
        rss = events[
            (events["event"] == "rss_stat")
            & (events["rss_stat.member"] == "MM_ANONPAGES")
            & (events["rss_stat.curr"] == 1)
        ].sort_values(["ts_ns", "line"])
        frees = events[
            (events["event"] == "mm_page_free") & events["page.pfn"].isin(user_page_pfns(events))
        ].sort_values("ts_ns")
        self.rss = {
            pid: (g["ts_ns"].to_numpy("int64"), g["rss_stat.size"].to_numpy("int64"))
            for pid, g in rss.groupby("pid")
        }
        self.frees = {
            pid: (g["ts_ns"].to_numpy("int64"), np.cumsum(2 ** g["page.order"].to_numpy("int64")))
            for pid, g in frees.groupby("pid")
        }

    def window(self, pid: int, start: int, end: int) -> tuple[int, int]:
        """Pages the pid's own mm lost (MM_ANONPAGES decrements) and user pages it freed
        within [start, end]; the first step is taken from the pid's previous rss_stat."""
        removed = freed = 0
        if pid in self.rss:
            ts, size = self.rss[pid]
            lo, hi = np.searchsorted(ts, start, "left"), np.searchsorted(ts, end, "right")
            steps = np.diff(size[max(lo - 1, 0) : hi]) // PAGE_SIZE
            removed = int(-steps[steps < 0].sum())
        if pid in self.frees:
            ts, pages = self.frees[pid]
            lo, hi = np.searchsorted(ts, start, "left"), np.searchsorted(ts, end, "right")
            freed = int(pages[hi - 1] - (pages[lo - 1] if lo else 0)) if hi > lo else 0
        return removed, freed


def _calls(events: pd.DataFrame) -> list[dict]:
    """munmap calls and madvise(MADV_DONTNEED) calls, with their range."""
    calls = []
    names = set(events["event"])
    if "sys_enter_munmap" in names:
        for call in syscall_windows(events, "munmap"):
            calls.append(
                dict(
                    call,
                    call="munmap",
                    range_start=call["munmap.addr"],
                    range_len=call["munmap.len"],
                )
            )
    if "sys_enter_madvise" in names:
        for call in syscall_windows(events, "madvise"):
            if call["madvise.behavior"] == "MADV_DONTNEED":
                calls.append(
                    dict(
                        call,
                        call="madvise_dontneed",
                        range_start=call["madvise.start"],
                        range_len=call["madvise.len"],
                    )
                )
    return calls


def partial_unmaps(events: pd.DataFrame, ledger: pd.DataFrame) -> pd.DataFrame:
    """One row per (call, folio size) that left large folios partially mapped."""
    rows = []
    already_partial: set[int] = set()
    per_pid = _PidSeries(events)
    for call in sorted(_calls(events), key=lambda c: c["start_ns"]):
        if call["end_ns"] is None:
            continue
        alive = alive_at(ledger, call["start_ns"], call["pid"])
        if alive.empty:
            continue
        start, length = int(call["range_start"]), int(call["range_len"])
        base = {
            "pid": call["pid"],
            "call": call["call"],
            "start_ns": call["start_ns"],
            "start_line": call["start_line"],
            "end_line": call["end_line"],
            "range_start": start,
            "range_len": length,
        }
        if alive["address"].notna().all():
            first = alive["address"]
            last = first + alive["size_kb"] * 1024
            cut = alive[
                (first < start + length)
                & (last > start)
                & ~((first >= start) & (last <= start + length))
                & ~alive["folio"].isin(already_partial)
            ]
            already_partial.update(cut["folio"])
            for size, group in cut.groupby("size_kb"):
                rows.append(
                    dict(
                        base,
                        size_kb=size,
                        partial_low=len(group),
                        partial_high=len(group),
                        pmd_mapped=bool((group["order"] == PMD_ORDER).all()),
                        evidence="range cuts folios at fault addresses "
                        + ",".join(hex(a) for a in group["address"][:4]),
                    )
                )
            continue
        removed, freed = per_pid.window(call["pid"], call["start_ns"], call["end_ns"])
        stayed = removed - freed
        if stayed <= 0:
            continue
        sizes = sorted(set(alive["size_kb"]))
        low, high = 1, min(2, stayed)
        if length <= PAGE_SIZE:
            high = 1
        for size in sizes:
            rows.append(
                dict(
                    base,
                    size_kb=size,
                    partial_low=low if len(sizes) == 1 else 0,
                    partial_high=high,
                    pmd_mapped=bool(size * 1024 == PAGE_SIZE << PMD_ORDER),
                    evidence=f"{removed} MM_ANONPAGES pages removed, {stayed} not freed;"
                    f" live folio sizes {sizes} KiB (no addresses)",
                )
            )
    return pd.DataFrame(rows, columns=PARTIAL_COLUMNS)
