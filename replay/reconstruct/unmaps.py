"""Per-folio unmap records of each reclaim episode, and how the captured kernel unmapped them.

Evidence, per episode (the reclaiming pid's events inside the episode window):
- discarded folios: ledger folios freed whole (``mm_page_free``, same pfn and order) in the window;
- kept folios (MADV_PAGEOUT only): the caller's ledger folios alive across the window, inside
  the advised range where the trace gives addresses (x86 ``page_fault_user``), and put back on
  an LRU in the window (``mm_lru_insertion`` of their pfn: reclaim isolated them and failed)
  when the trace has that event — the one evidence arm64 and riscv traces have;
- how they were unmapped: the ``rss_stat`` MM_ANONPAGES steps in the window (of the caller's
  mm for MADV_PAGEOUT, of every mm for kswapd and direct reclaim).
  A step of -N pages for an N-page folio is one batched unmap (6.15+ 354dffd29575, or a PMD);
  steps of -1 are per-page unmaps (before 6.15: one dec_mm_counter() per PTE in
  try_to_unmap_one()). x86 ``tlb_flush`` page counts are recorded as corroboration only:
  arm64 and riscv traces have no tlb_flush event.
- kept folios freed or split after the episode (ledger) were zapped later (``zapped_later``):
  the counters such a zap moves (``UnmapResult.zap_counters``) belong to the capture too;
- redirtied folios: on a per-page kernel, a kept folio lost the PTEs before its first dirty
  page; the -1 steps left after discarded folios and small pages are those pages. Zero left
  means every kept folio was dirty at page 0, the maximum (nr_pages - 1 each) that every one
  was dirty at its last page; anything else, and any batched kernel (which restores the whole
  batch), leaves the dirty page unknown (UNKNOWN_DIRTY_PAGE: replayed at first and last page).
"""

from __future__ import annotations

from collections import Counter

import pandas as pd
from folio_replay.replay.folio import UNKNOWN_DIRTY_PAGE
from folio_replay.replay.reconstruct.episodes import window_rows
from folio_replay.replay.reconstruct.ledger import alive_at

PAGE_SIZE = 4096  # x86_64, Debian arm64 and riscv64 kernels all use 4 KiB base pages
PMD_ORDER = 9  # 2 MiB / 4 KiB
# tlb_flush reason TLB_FLUSH_ON_TASK_SWITCH (include/linux/mm_types.h, printed by
# include/trace/events/tlb.h): a context switch, not an unmap.
TASK_SWITCH = "flush on task switch"

FOLIO_COLUMNS = [
    "episode",
    "folio",
    "pid",
    "pfn",
    "order",
    "nr_pages",
    "size_kb",
    "address",
    "pmd_mapped",
    "outcome",
    "captured_unmap",
    "dirty_page",
    "zapped_later",
    "evidence",
]


def rss_steps(events: pd.DataFrame, rows: pd.DataFrame, own_mm: bool) -> list[int]:
    """MM_ANONPAGES size steps (pages; negative = unmapped) within ``rows``.

    ``own_mm``: only the events about the current task's mm (``curr=1``: MADV_PAGEOUT and
    munmap act on the caller's mm); otherwise every mm (kswapd and direct reclaim unmap other
    processes' folios: ``curr=0``). Each step is taken against the previous event of the
    same mm_id, the first one against the last event of that mm before the window.
    """
    anon = rows[(rows["event"] == "rss_stat") & (rows["rss_stat.member"] == "MM_ANONPAGES")]
    if own_mm:
        anon = anon[anon["rss_stat.curr"] == 1]
    steps = []
    for mm_id, group in anon.groupby("rss_stat.mm_id", sort=False):
        first = group["line"].iloc[0]
        before = events[
            (events["event"] == "rss_stat")
            & (events["rss_stat.mm_id"] == mm_id)
            & (events["rss_stat.member"] == "MM_ANONPAGES")
            & (events["line"] < first)
        ]
        previous = int(before["rss_stat.size"].iloc[-1]) if not before.empty else None
        for size in group["rss_stat.size"].astype(int):
            if previous is not None:
                steps.append((size - previous) // PAGE_SIZE)
            previous = size
    return steps


def captured_mode(
    steps: Counter, flushes: Counter, per_page_pages: int, leftover: int, kept: pd.DataFrame
) -> tuple[str, str]:
    """How the captured kernel unmapped large folios in the episode: ``per_page``,
    ``batched`` or ``undecided``, with the evidence.

    rss_stat decides when large folios were discarded (steps of -1 vs -N) or kept folios lost
    pages; when every large folio was kept whole, only x86 ``tlb_flush`` can tell: a batched
    kernel clears and flushes the whole folio before restoring it, a per-page one the first PTE.
    A PMD-mapped folio is unmapped in one step by every kernel, so it decides nothing.
    """
    if per_page_pages or leftover:
        return (
            "per_page",
            f"rss_stat: {per_page_pages + leftover} single-page steps of large folios",
        )
    if any(count for size, count in steps.items() if 1 < size < 1 << PMD_ORDER):
        return "batched", "rss_stat: multi-page steps of PTE-mapped folios"
    if not kept.empty:
        sizes = set(kept["nr_pages"])
        if sum(flushes[size] for size in sizes) >= len(kept):
            return "batched", "tlb_flush: one flush of the folio's pages per kept folio"
        if flushes[1] >= len(kept):
            return "per_page", "tlb_flush: single-page flushes, no rss_stat step"
    return "undecided", "no rss_stat step and no tlb_flush of large folios"


def _dirty_page(kept: pd.DataFrame, leftover: int, mode: str, contpte: bool) -> tuple[int, str]:
    """The dirty page shared by every kept folio when the trace decides it, and why.

    With arm64 contpte, clearing the first PTE unfolds its 16-page block and ORs the block's
    dirty bits into every PTE (arch/arm64/mm/contpte.c contpte_convert()): a folio that lost
    no page was dirty somewhere in its first block, not necessarily at page 0.
    """
    if mode != "per_page":
        return UNKNOWN_DIRTY_PAGE, f"{mode} unmap: the dirty page is not in the trace"
    if leftover == 0 and contpte:
        return UNKNOWN_DIRTY_PAGE, (
            "per-page kernel, no page lost, but contpte unfolding "
            "gathers the first block's dirty bits: page unknown"
        )
    if leftover == 0:
        return 0, "per-page kernel, no -1 rss step left for kept folios: dirty at page 0"
    if leftover == int((kept["nr_pages"] - 1).sum()) and kept["nr_pages"].nunique() == 1:
        return int(kept["nr_pages"].iloc[0]) - 1, (
            f"per-page kernel, {leftover} -1 rss steps left = every kept folio lost all but "
            "its last page: dirty at the last page"
        )
    return UNKNOWN_DIRTY_PAGE, f"per-page kernel, {leftover} -1 rss steps left: dirty page unknown"


def episode_folios(
    events: pd.DataFrame, ledger: pd.DataFrame, episode: pd.Series, contpte: bool
) -> tuple[pd.DataFrame, dict]:
    """The episode's folio records and its signature summary (a dict of evidence counts);
    ``contpte``: the capture's arch maps large folios with contiguous-PTE blocks (arm64)."""
    rows = window_rows(events, episode)
    start, end, pid = episode["start_ns"], episode["end_ns"], episode["pid"]
    closed = end is not None and not pd.isna(end)
    freed_lines = set(rows[rows["event"] == "mm_page_free"]["line"])
    discarded = ledger[ledger["end_line"].isin(freed_lines) & (ledger["end"] == "freed")]
    kept = ledger.iloc[0:0]
    if episode["kind"].endswith("madvise_pageout") and closed:
        alive = alive_at(ledger, start, pid)
        kept = alive[alive["end_ns"].isna() | (alive["end_ns"].fillna(0) > end)]
        if episode["range_start"] is not None and not pd.isna(episode["range_start"]):
            lo, hi = int(episode["range_start"]), int(episode["range_start"] + episode["range_len"])
            with_address = kept["address"].notna()
            inside = (kept["address"].fillna(0) >= lo) & (kept["address"].fillna(0) < hi)
            kept = kept[~with_address | inside]
        if (events["event"] == "mm_lru_insertion").any():
            putback = rows[rows["event"] == "mm_lru_insertion"]["lru_insertion.pfn"]
            kept = kept[kept["pfn"].isin(set(putback.dropna().astype(int)))]
    own_mm = episode["kind"].endswith("madvise_pageout")
    steps = Counter(-step for step in rss_steps(events, rows, own_mm) if step < 0)
    small_frees = int(((rows["event"] == "mm_page_free") & (rows["page.order"] == 0)).sum())
    unmap_flushes = (rows["event"] == "tlb_flush") & (rows["tlb_flush.reason"] != TASK_SWITCH)
    flushes = Counter(rows[unmap_flushes]["tlb_flush.pages"].astype(int))
    unused = Counter(steps)
    records = []
    per_page_pages = 0
    for folio in discarded.sort_values("alloc_line").to_dict("records"):
        nr = folio["nr_pages"]
        if unused[nr] > 0:
            unused[nr] -= 1
            how = "pmd" if folio["order"] == PMD_ORDER else "batched"
            why = f"one rss_stat step of -{nr} pages"
        elif unused[1] >= nr:
            unused[1] -= nr
            per_page_pages += nr
            how, why = "per_page", f"{nr} rss_stat steps of -1 page"
        else:
            how, why = "unknown", "no rss_stat steps left to account for it"
        records.append(
            dict(
                folio,
                outcome="discarded",
                captured_unmap=how,
                dirty_page=None,
                zapped_later=False,
                evidence=f"{folio['evidence']}; freed in episode; {why}",
            )
        )
    small_discards = min(small_frees, unused[1])
    leftover = unused[1] - small_discards
    mode, mode_why = captured_mode(steps, flushes, per_page_pages, leftover, kept)
    if not kept.empty:
        dirty, why = _dirty_page(kept, leftover, mode, contpte)
        for folio in kept.sort_values("alloc_line").to_dict("records"):
            records.append(
                dict(
                    folio,
                    outcome="kept",
                    captured_unmap=mode,
                    dirty_page=dirty,
                    zapped_later=folio["end"] != "alive",
                    evidence=f"{folio['evidence']}; alive across episode; {why}",
                )
            )
    frame = pd.DataFrame(
        records, columns=[c for c in FOLIO_COLUMNS if c not in ("episode",)] + ["episode"]
    )
    frame["episode"] = episode["episode"]
    frame["pmd_mapped"] = frame["order"] == PMD_ORDER
    signature = {
        "episode": episode["episode"],
        "rss_steps": dict(sorted(steps.items())),
        "tlb_flush_pages": dict(sorted(flushes.items())),
        "small_discards": small_discards,
        "captured_mode": mode,
        "captured_mode_evidence": mode_why,
        "kept_per_page_steps": leftover,
    }
    return frame[FOLIO_COLUMNS], signature
