"""Genuine partial unmaps: munmap or MADV_DONTNEED of part of a large folio, apart from reclaim.

Such a call leaves the folio partially mapped: deferred_split_folio() queues it and counts
``split_deferred`` for its size once (plus ``thp_deferred_split_page`` for PMD-sized folios,
after ``thp_split_pmd`` splits the PMD mapping) — on every kernel, batched or not.

Evidence: with addresses (x86 ``page_fault_user``) a folio is partially unmapped when the range
overlaps it without covering it. Without addresses: the caller's MM_ANONPAGES pages removed in
the window minus the pages freed in it are pages of folios that stayed allocated; a range can
cut at most two folios (its head and its tail), so the count is bounded by [1, min(2, pages)],
exact when a single page stayed.
"""

from __future__ import annotations

import pandas as pd

from replay.episodes import window_rows
from replay.ledger import alive_at
from replay.syscalls import syscall_windows
from replay.unmaps import PAGE_SIZE, PMD_ORDER, rss_steps

PARTIAL_COLUMNS = ["pid", "call", "start_ns", "start_line", "end_line", "range_start",
                   "range_len", "size_kb", "partial_low", "partial_high", "pmd_mapped",
                   "evidence"]


def _calls(events: pd.DataFrame) -> list[dict]:
    """munmap calls and madvise(MADV_DONTNEED) calls, with their range."""
    calls = []
    names = set(events["event"])
    if "sys_enter_munmap" in names:
        for call in syscall_windows(events, "munmap"):
            calls.append(dict(call, call="munmap", range_start=call["munmap.addr"],
                              range_len=call["munmap.len"]))
    if "sys_enter_madvise" in names:
        for call in syscall_windows(events, "madvise"):
            if call["madvise.behavior"] == "MADV_DONTNEED":
                calls.append(dict(call, call="madvise_dontneed", range_start=call["madvise.start"],
                                  range_len=call["madvise.len"]))
    return calls


def partial_unmaps(events: pd.DataFrame, ledger: pd.DataFrame) -> pd.DataFrame:
    """One row per (call, folio size) that left large folios partially mapped."""
    rows = []
    already_partial: set[int] = set()
    for call in sorted(_calls(events), key=lambda c: c["start_ns"]):
        if call["end_ns"] is None:
            continue
        alive = alive_at(ledger, call["start_ns"], call["pid"])
        if alive.empty:
            continue
        start, length = int(call["range_start"]), int(call["range_len"])
        base = {"pid": call["pid"], "call": call["call"], "start_ns": call["start_ns"],
                "start_line": call["start_line"], "end_line": call["end_line"],
                "range_start": start, "range_len": length}
        if alive["address"].notna().all():
            first = alive["address"]
            last = first + alive["size_kb"] * 1024
            cut = alive[(first < start + length) & (last > start)
                        & ~((first >= start) & (last <= start + length))
                        & ~alive["folio"].isin(already_partial)]
            already_partial.update(cut["folio"])
            for size, group in cut.groupby("size_kb"):
                rows.append(dict(base, size_kb=size, partial_low=len(group),
                                 partial_high=len(group),
                                 pmd_mapped=bool((group["order"] == PMD_ORDER).all()),
                                 evidence="range cuts folios at fault addresses "
                                          + ",".join(hex(a) for a in group["address"][:4])))
            continue
        window = window_rows(events, {"pid": call["pid"], "start_ns": call["start_ns"],
                                      "end_ns": call["end_ns"]})
        removed = -sum(step for step in rss_steps(events, window, call["pid"]) if step < 0)
        frees = window[window["event"] == "mm_page_free"]["page.order"]
        stayed = removed - int((2 ** frees.astype(int)).sum())
        if stayed <= 0:
            continue
        sizes = sorted(set(alive["size_kb"]))
        low, high = 1, min(2, stayed)
        if length <= PAGE_SIZE:
            high = 1
        for size in sizes:
            rows.append(dict(base, size_kb=size, partial_low=low if len(sizes) == 1 else 0,
                             partial_high=high,
                             pmd_mapped=bool(size * 1024 == PAGE_SIZE << PMD_ORDER),
                             evidence=f"{removed} MM_ANONPAGES pages removed, {stayed} not freed;"
                                      f" live folio sizes {sizes} KiB (no addresses)"))
    return pd.DataFrame(rows, columns=PARTIAL_COLUMNS)
