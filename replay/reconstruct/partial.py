"""Genuine partial unmaps: munmap or MADV_DONTNEED of part of a large folio, apart from reclaim,
and MADV_FREE, MADV_PAGEOUT or MADV_COLD of part of one.

Such a call leaves the folio partially mapped: deferred_split_folio() queues it and counts
``split_deferred`` for its size once (plus ``thp_deferred_split_page`` for PMD-sized folios,
after ``thp_split_pmd`` splits the PMD mapping) — on every kernel, batched or not. MADV_FREE,
MADV_PAGEOUT and MADV_COLD of part of an exclusively mapped large folio split it (mm/madvise.c
madvise_free_pte_range(), madvise_cold_or_pageout_pte_range() and mm/huge_memory.c
madvise_free_huge_pmd(), 6.12, 6.18, 7.0 … 7.3.4): split_folio() unmaps a PTE-mapped folio one
PTE at a time through try_to_migrate_one(), so __folio_remove_rmap() queues it the same way (and
``split`` counts it); a PMD-mapped one has its PMD split frozen (migration entries instead of
PTEs: ``thp_split_pmd``, no PTE mapping left), so it is never partially mapped and deferred
split does not count it (``deferred_split`` false in its row).

Evidence: with addresses (x86 ``page_fault_user``) a folio is partially unmapped when the range
overlaps it without covering it. Without addresses: the caller's MM_ANONPAGES pages removed in
the window minus the user pages freed in it are pages of folios that stayed allocated; a range
can cut at most two folios (its head and its tail), so the count is bounded by [1, min(2,
pages)], exact when a single page stayed. Sizes the range's ends are both aligned to are not
cut (anon folios are naturally aligned where they were faulted). Pages freed in the window
that the trace never saw allocated may be user pages allocated before the trace began: when
they are as many as the pages that stayed, the lower bound is 0. A splitting call also splits
folios its range holds whole when a page table or VMA ends inside them (moved by mremap, cut by
mprotect): a lazyfree folio seen split inside the call's window is counted exactly
(:func:`_split_in_window`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from folio_replay.replay.reconstruct.coverage import Coverage, live_counts, overlapping
from folio_replay.replay.reconstruct.events import MISSING, EventArrays
from folio_replay.replay.reconstruct.joins import codes, equals, group_runs, latest_before
from folio_replay.replay.reconstruct.lazyfree import madvise_calls
from folio_replay.replay.reconstruct.ledger import (
    MAX_ORDER_KEY,
    USER_GFP_MARKERS,
    first_in_life,
    gfp_flags_with,
)
from folio_replay.replay.reconstruct.prior import Prior
from folio_replay.replay.reconstruct.syscalls import syscall_calls

__all__ = [
    "COW_COPY",
    "PAGE_SIZE",
    "PARTIAL_COLUMNS",
    "PMD_ORDER",
    "PartialUnmaps",
    "live_pfns",
    "merged_copies",
    "munmap_edges",
    "partial_unmaps",
]

# mapping edges kept per process for the next segments (beyond it the lowest addresses go)
MAX_EDGES = 1 << 16
COW_COPY = "cow_copy"  # the call of a process's copy-on-write faults' row

PAGE_SIZE = 4096  # x86_64, Debian arm64 and riscv64 kernels all use 4 KiB base pages
PMD_ORDER = 9  # 2 MiB / 4 KiB
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
    "deferred_split",
    "evidence",
]
# calls that cut a large folio by splitting it (split_folio()), with their advice names
SPLITTING_CALLS = {
    "madvise_free": "MADV_FREE",
    "madvise_pageout": "MADV_PAGEOUT",
    "madvise_cold": "MADV_COLD",
}


def user_page_pfns(events: EventArrays) -> np.ndarray:
    """pfns allocated as user pages in the table: frees of other pfns in a call's window are
    kernel memory (page tables, maple-tree nodes, slabs) freed in the caller's context."""
    allocs = events.rows("mm_page_alloc")
    user = gfp_flags_with(events, allocs, USER_GFP_MARKERS)
    if not user.any():
        return np.empty(0, np.int64)
    return np.unique(events.ints("page.pfn", allocs[user]))


def live_pfns(events: EventArrays, earlier: np.ndarray, user_only: bool) -> np.ndarray:
    """Page pfns (user pages only, or any) still allocated at the end of the table
    (``earlier``: those allocated before it): the last event of each is an allocation, not a
    free."""
    allocs = events.rows("mm_page_alloc")
    if user_only:
        allocs = allocs[np.isin(events.ints("page.pfn", allocs), user_page_pfns(events))]
    frees = events.rows("mm_page_free")
    rows = np.concatenate([allocs, frees])
    pfns = np.concatenate([events.ints("page.pfn", allocs), events.ints("page.pfn", frees)])
    last = pd.Series(rows, index=pfns).groupby(level=0).max()
    allocated_last = np.isin(last.to_numpy(), allocs)
    freed_here = last.index.to_numpy()[~allocated_last]
    return np.union1d(last.index.to_numpy()[allocated_last], np.setdiff1d(earlier, freed_here))


class _PidSeries:
    """Per-pid series of the pid's own MM_ANONPAGES sizes and of user-page frees, in row
    order, for the pages a call's window removed and freed."""

    def __init__(self, events: EventArrays, prior: Prior) -> None:
        rss = events.rows("rss_stat")
        codes, members = events.codes("rss_stat.member", rss)
        anon = (
            (codes == members.index("MM_ANONPAGES"))
            if "MM_ANONPAGES" in members
            else np.zeros(len(rss), dtype=bool)
        )
        rss = rss[anon & (events.ints("rss_stat.curr", rss) == 1)]
        sizes = events.ints("rss_stat.size", rss)
        self.rss = {
            pid: (rss[i], sizes[i])
            for pid, i in pd.Series(events.pid[rss]).groupby(events.pid[rss]).indices.items()
        }
        user_pfns = np.union1d(user_page_pfns(events), prior.user_pfns)
        frees = events.rows("mm_page_free")
        pfns = events.ints("page.pfn", frees)
        user = np.isin(pfns, user_pfns)
        self.frees = self._by_pid(events, frees[user])
        # frees of pages the trace never saw allocated (not earlier in the table, not alive
        # from earlier segments): allocated before the trace began, user pages or not
        allocs = events.rows("mm_page_alloc")
        alloc_pfns = events.ints("page.pfn", allocs)
        first_alloc = pd.Series(allocs, index=alloc_pfns).groupby(level=0).min()
        seen = first_alloc.reindex(pfns).fillna(np.inf).to_numpy() < frees
        seen |= np.isin(pfns, prior.traced_pfns)
        self.unseen_frees = self._by_pid(events, frees[~user & ~seen])

    @staticmethod
    def _by_pid(events: EventArrays, frees: np.ndarray) -> dict:
        pages = np.left_shift(1, events.ints("page.order", frees))
        return {
            pid: (frees[i], np.cumsum(pages[i]))
            for pid, i in pd.Series(events.pid[frees]).groupby(events.pid[frees]).indices.items()
        }

    @staticmethod
    def _pages(series: dict, pid: int, start: int, end: int) -> int:
        if pid not in series:
            return 0
        seqs, pages = series[pid]
        lo, hi = np.searchsorted(seqs, start, "left"), np.searchsorted(seqs, end, "right")
        return int(pages[hi - 1] - (pages[lo - 1] if lo else 0)) if hi > lo else 0

    def window(self, pid: int, start: int, end: int) -> tuple[int, int, int]:
        """Pages the pid's own mm lost (MM_ANONPAGES decrements), user pages it freed, and
        pages it freed that the trace never saw allocated (user pages allocated before the
        trace, perhaps) in rows [start, end]; the first step is taken from the pid's previous
        rss_stat."""
        removed = 0
        if pid in self.rss:
            seqs, size = self.rss[pid]
            lo, hi = np.searchsorted(seqs, start, "left"), np.searchsorted(seqs, end, "right")
            steps = np.diff(size[max(lo - 1, 0) : hi]) // PAGE_SIZE
            removed = int(-steps[steps < 0].sum())
        return (
            removed,
            self._pages(self.frees, pid, start, end),
            self._pages(self.unseen_frees, pid, start, end),
        )


@dataclass
class PartialUnmaps:
    """What :func:`partial_unmaps` found: its rows, and the folios they name (kept apart from
    the frame: pandas deep-copies a frame's ``attrs`` at every operation on it)."""

    frame: pd.DataFrame
    cut: set[int] = field(default_factory=set)  # allocation lines of the folios cut here
    # of those, the ones a splitting call split: allocation line -> row (seq) of the call
    split: dict[int, int] = field(default_factory=dict)
    # the callers whose calls cut folios the trace cannot name (no fault addresses)
    unnamed: set[int] = field(default_factory=set)


def _munmap_calls(events: EventArrays) -> pd.DataFrame:
    """munmap calls with their ranges (all, closed or not)."""
    if not events.has("sys_enter_munmap"):
        return pd.DataFrame()
    return syscall_calls(
        events, "munmap", {"range_start": "munmap.addr", "range_len": "munmap.len"}
    ).assign(call="munmap")


def _calls(events: EventArrays) -> pd.DataFrame:
    """munmap calls and the madvise() calls of MADV_DONTNEED and of the splitting advice
    (:data:`SPLITTING_CALLS`) with their ranges, closed ones only, in time order."""
    advised = {"madvise_dontneed": "MADV_DONTNEED", **SPLITTING_CALLS}
    frames = [
        frame
        for frame in (
            _munmap_calls(events),
            *(madvise_calls(events, advice).assign(call=call) for call, advice in advised.items()),
        )
        if not frame.empty
    ]
    if not frames:
        return pd.DataFrame()
    calls = pd.concat(frames, ignore_index=True)
    calls = calls[calls["exit_seq"] >= 0]
    return calls.sort_values("enter_seq", kind="stable").reset_index(drop=True)


def partial_unmaps(
    events: EventArrays,
    ledger: pd.DataFrame,
    prior: Prior | None = None,
    write_faults: pd.DataFrame | None = None,
) -> PartialUnmaps:
    """One row per (call, folio size) that left large folios partially mapped, and per
    (process, folio size) whose copy-on-write faults did (``write_faults``:
    :func:`.write_runs.write_protect_faults`, x86 only); with ``prior`` (earlier segments),
    folios already cut there are not counted again and their user pages are known. Also the
    allocation lines of the folios cut here, and of those a splitting call split, with the
    seq of the call (:class:`PartialUnmaps`)."""
    prior = prior or Prior()
    calls = _calls(events)
    # deferred split queues anonymous folios only (mm/rmap.c __folio_remove_rmap()): not page
    # cache, nor shmem (whose insertion may go untraced: its LRU flags say file)
    flag_code, flag_values = codes(ledger["lru_flags"])
    file_flag = np.array([("f" in str(v)) for v in flag_values] + [False], dtype=bool)[flag_code]
    ledger = ledger[(ledger["file_seq"] < 0).to_numpy() & ~file_flag].reset_index(drop=True)
    before = np.isin(ledger["alloc_line"].to_numpy(), np.fromiter(prior.cut, np.int64))
    cut: set[int] = set()
    copied = _cut_by_copy(events, ledger, write_faults, before, cut)
    if calls.empty or ledger.empty:
        frame = pd.DataFrame(copied, columns=[*PARTIAL_COLUMNS, "enter_seq"])
        return PartialUnmaps(frame[PARTIAL_COLUMNS], cut)
    # the caller's folios alive at each call, wherever they are: all with addresses, or not
    unaddressed = ledger["address"].isna().to_numpy()
    all_addressed = live_counts(ledger, calls, unaddressed) == 0
    has_alive = live_counts(ledger, calls, np.ones(len(ledger), dtype=bool)) > 0
    split: dict[int, int] = {}
    before |= np.isin(ledger["alloc_line"].to_numpy(), np.fromiter(cut, np.int64))
    rows = _cut_by_address(ledger, calls, all_addressed, before, cut, split)
    blind = _cut_by_arithmetic(events, ledger, calls, has_alive & ~all_addressed, prior)
    before |= np.isin(ledger["alloc_line"].to_numpy(), np.fromiter(cut, np.int64))
    unnamed_pids = {int(r["pid"]) for r in blind if r["partial_high"] > 0}
    # a process's cuts in earlier segments came before every call here
    unnamed = pd.DataFrame(
        [(r["pid"], r["enter_seq"]) for r in blind if r["partial_high"] > 0]
        + [(pid, MISSING) for pid in sorted(prior.unnamed_cuts)],
        columns=["pid", "enter_seq"],
    )
    walked = _split_in_window(events, ledger, calls, before, unnamed, cut, split)
    rows += walked
    # a split seen in a window is the evidence for its call and folio size
    seen = {(row["enter_seq"], row["size_kb"]) for row in walked}
    rows += [row for row in blind if (row["enter_seq"], row["size_kb"]) not in seen]
    rows += copied
    frame = pd.DataFrame(rows, columns=[*PARTIAL_COLUMNS, "enter_seq"])
    frame = frame.sort_values("enter_seq", kind="stable")[PARTIAL_COLUMNS].reset_index(drop=True)
    return PartialUnmaps(frame, cut, split, unnamed_pids)


def _queued(call: str, pmd_mapped: bool) -> bool:
    """Whether the folios a ``call`` cuts are queued for deferred split: all but PMD-mapped
    ones a splitting call splits (a frozen PMD split leaves no PTE mapping)."""
    return not (pmd_mapped and call in SPLITTING_CALLS)


class _CallColumns:
    """A calls frame's columns as arrays: one call's fields without a pandas row per call."""

    def __init__(self, calls: pd.DataFrame) -> None:
        self.columns = {name: calls[name].to_numpy() for name in calls.columns}

    def row(self, i: int) -> dict:
        """Call ``i``'s fields by column name."""
        return {name: values[i] for name, values in self.columns.items()}


def _base(call: Mapping) -> dict:
    return {
        "pid": call["pid"],
        "call": call["call"],
        "start_ns": call["start_ns"],
        "start_line": call["start_line"],
        "end_line": call["end_line"],
        "range_start": int(call["range_start"]),
        "range_len": int(call["range_len"]),
        "enter_seq": call["enter_seq"],
    }


def _cut_by_copy(
    events: EventArrays,
    ledger: pd.DataFrame,
    write_faults: pd.DataFrame | None,
    before: np.ndarray,
    cut_lines: set[int],
) -> list[dict]:
    """Folios a copy-on-write fault left partially mapped (``wp_page_copy()`` maps a new page
    in place of one of the folio's: __folio_remove_rmap() queues it for deferred split), each
    counted at its first copy unless cut ``before``; one row per faulting process and folio
    size. A PMD-mapped THP's write fault splits the PMD first (``do_huge_pmd_wp_page()``),
    which this does not model: PMD-sized folios are left out."""
    if write_faults is None or write_faults.empty or ledger.empty:
        return []
    copies = write_faults[write_faults["copy"].to_numpy(dtype=bool)]
    copies = copies.sort_values("seq", kind="stable").drop_duplicates("folio")
    position = pd.Index(ledger["folio"]).get_indexer(copies["folio"])
    known = position >= 0
    copies, position = copies[known], position[known]
    use = ~before[position] & (ledger["order"].to_numpy()[position] < PMD_ORDER)
    copies, position = copies[use], position[use]
    cut_lines.update(ledger["alloc_line"].to_numpy()[position].tolist())
    seq = copies["seq"].to_numpy()
    frame = pd.DataFrame(
        {
            "pid": events.pid[seq],
            "size_kb": ledger["size_kb"].to_numpy()[position],
            "seq": seq,
            "address": ledger["address"].to_numpy(dtype=np.int64, na_value=0)[position],
        }
    )
    rows = []
    for (pid, size), group in frame.groupby(["pid", "size_kb"], sort=False):
        first, last = int(group["seq"].min()), int(group["seq"].max())
        start = int(group["address"].min())
        rows.append(
            {
                "pid": int(pid),
                "call": COW_COPY,
                "start_ns": int(events.ts[first]),
                "start_line": int(events.line[first]),
                "end_line": int(events.line[last]),
                "range_start": start,
                "range_len": int(group["address"].max()) + int(size) * 1024 - start,
                "enter_seq": first,
                "size_kb": int(size),
                "partial_low": len(group),
                "partial_high": len(group),
                "pmd_mapped": False,
                "deferred_split": True,
                "evidence": _copy_evidence(group["address"].tolist()),
            }
        )
    return rows


_COPY_EVIDENCE = (
    "write-protect faults (page_fault_user error_code 0x7) each followed by an order-0 "
    "mm_page_alloc (a copy) in folios at "
)
_COPIES_SHOWN = 4  # folio addresses a cow_copy row's evidence names


def _copy_evidence(addresses: list[int]) -> str:
    """A cow_copy row's evidence, naming its first folios' addresses."""
    return _COPY_EVIDENCE + ",".join(hex(int(a)) for a in addresses[:_COPIES_SHOWN])


def merged_copies(rows: pd.DataFrame) -> pd.DataFrame:
    """The ``cow_copy`` rows of one trace's segments (in trace order) as the whole trace makes
    them: one per faulting process and folio size, its folios counted, its range and lines
    spanning all of theirs, its evidence naming the first folios."""
    merged = []
    for _, group in rows.groupby(["pid", "size_kb"], sort=False):
        row = group.iloc[0].to_dict()
        start = int(group["range_start"].min())
        named = [a for text in group["evidence"] for a in text[len(_COPY_EVIDENCE) :].split(",")]
        row.update(
            end_line=int(group["end_line"].iloc[-1]),
            range_start=start,
            range_len=int((group["range_start"] + group["range_len"]).max()) - start,
            partial_low=int(group["partial_low"].sum()),
            partial_high=int(group["partial_high"].sum()),
            evidence=_copy_evidence([int(a, 16) for a in named]),
        )
        merged.append(row)
    return pd.DataFrame(merged, columns=rows.columns)


def _cut_by_address(
    ledger: pd.DataFrame,
    calls: pd.DataFrame,
    all_addressed: np.ndarray,
    before: np.ndarray,
    cut_lines: set[int],
    split_at: dict[int, int],
) -> list[dict]:
    """Calls whose live folios all have addresses: folios the range overlaps without covering,
    each counted at the first call that cuts it (not at all if cut ``before``); the
    allocation lines of the folios counted go into ``cut_lines``, and those of the folios a
    splitting call split (:data:`SPLITTING_CALLS`) into ``split_at`` with the call's seq."""
    folio_idx, call_idx = overlapping(ledger, calls)
    use = all_addressed[call_idx] & ~before[folio_idx]
    folio_idx, call_idx = folio_idx[use], call_idx[use]
    first = ledger["address"].to_numpy(dtype=np.float64, na_value=np.nan)[folio_idx]
    last = first + ledger["size_kb"].to_numpy()[folio_idx] * 1024
    start = calls["range_start"].to_numpy()[call_idx].astype(np.float64)
    end = start + calls["range_len"].to_numpy()[call_idx]
    cut = ~((first >= start) & (last <= end))
    folio_idx, call_idx = folio_idx[cut], call_idx[cut]
    order = np.lexsort((call_idx, folio_idx))
    once = np.ones(len(order), dtype=bool)
    once[1:] = folio_idx[order[1:]] != folio_idx[order[:-1]]
    folio_idx, call_idx = folio_idx[order[once]], call_idx[order[once]]
    cut_lines.update(ledger["alloc_line"].to_numpy()[folio_idx].tolist())
    splitting = calls["call"].isin(list(SPLITTING_CALLS)).to_numpy()[call_idx]
    split_at.update(
        zip(
            ledger["alloc_line"].to_numpy()[folio_idx[splitting]].tolist(),
            calls["enter_seq"].to_numpy()[call_idx[splitting]].tolist(),
        )
    )
    if not len(folio_idx):
        return []
    columns = _CallColumns(calls)
    sizes = ledger["size_kb"].to_numpy()[folio_idx]
    pmd = ledger["order"].to_numpy()[folio_idx] == PMD_ORDER
    address = ledger["address"].to_numpy(dtype=np.int64, na_value=0)[folio_idx]
    order, starts, ends = group_runs(call_idx, sizes)
    all_pmd = np.logical_and.reduceat(pmd[order], starts)
    rows = []
    for first, end, pmd_mapped in zip(starts.tolist(), ends.tolist(), all_pmd.tolist()):
        call = columns.row(int(call_idx[order[first]]))
        rows.append(
            _base(call)
            | {
                "size_kb": int(sizes[order[first]]),
                "partial_low": end - first,
                "partial_high": end - first,
                "pmd_mapped": pmd_mapped,
                "deferred_split": _queued(str(call["call"]), pmd_mapped),
                "evidence": "range cuts folios at fault addresses "
                + ",".join(hex(int(a)) for a in address[order[first : min(end, first + 4)]]),
            }
        )
    return rows


def _split_seen(events: EventArrays, ledger: pd.DataFrame) -> np.ndarray:
    """Per ledger folio, the first row that shows it split (MISSING: none): an order-0 page of
    its range freed (its ledger end), or a page of its range other than its head put on an
    LRU list (mm_lru_insertion names a folio by its head page: a tail page there is a folio
    of its own), within its life."""
    seen = np.where(equals(ledger["end"], "split"), ledger["end_seq"].to_numpy(), MISSING)
    lru = events.rows("mm_lru_insertion")
    if not len(lru) or ledger.empty:
        return seen
    pfn = events.ints("lru_insertion.pfn", lru)
    key = ledger["pfn"].to_numpy() * MAX_ORDER_KEY + ledger["order"].to_numpy()
    alloc, end = ledger["alloc_seq"].to_numpy(), ledger["end_seq"].to_numpy()
    tail_seen = np.full(len(ledger), MISSING, dtype=np.int64)
    for order in np.unique(ledger["order"].to_numpy()).tolist():
        tail = pfn % (1 << order) != 0
        base = pfn[tail] - pfn[tail] % (1 << order)
        owner = latest_before(key, alloc, base * MAX_ORDER_KEY + order, lru[tail])
        first_in_life(tail_seen, owner, lru[tail], end)
    earlier = (tail_seen >= 0) & ((seen < 0) | (tail_seen < seen))
    return np.where(earlier, tail_seen, seen)


def _split_in_window(
    events: EventArrays,
    ledger: pd.DataFrame,
    calls: pd.DataFrame,
    before: np.ndarray,
    unnamed_cuts: pd.DataFrame,
    cut_lines: set[int],
    split_at: dict[int, int],
) -> list[dict]:
    """Lazyfree folios of the caller that a splitting call (:data:`SPLITTING_CALLS`) split
    wherever its range holds them: the call's page walk batches a large folio's PTEs up to the
    end of the page table or VMA it walks (max_nr = (end - addr) / PAGE_SIZE in
    madvise_cold_or_pageout_pte_range() and madvise_free_pte_range(), 6.12 .. 7.3) and splits
    a folio whose batch falls short, so a folio moved by mremap across a page-table end, or
    whose VMA mprotect cut, is split even inside the range, where addresses (stale after
    mremap) show no cut.

    A folio already partially mapped is split the same way: after a copy-on-write fault
    replaced one of its pages (6.12 copies a page of a large folio on a write after fork), the
    batch stops at that page; its split_deferred +1 came at the copy, which a trace without
    fault addresses (arm64, riscv) does not show (x86 shows it: a ``cow_copy`` row, and the
    folio counts as cut before). Either way, once.

    Evidence: a folio MADV_FREE of its process marked lazyfree (this call, whose walk splits as it
    marks, or an earlier one), alive when the call began, shows a split (:func:`_split_seen`) inside
    the call's window. Reclaim itself splits no lazyfree folio (it discards or keeps it) except one
    already partially mapped (shrink_folio_list()), which an earlier cut named by address excludes
    (``before``); a process with earlier cuts the trace cannot name (``unnamed_cuts``: no addresses)
    is left to the range-end evidence. PMD-sized folios are too (a PMD mapping is split frozen: no
    deferred split). Counted once, exactly; the folios go into ``cut_lines`` and ``split_at``."""
    splitting = calls[calls["call"].isin(list(SPLITTING_CALLS)).to_numpy()].reset_index(drop=True)
    lazy = madvise_calls(events, "MADV_FREE")
    if splitting.empty or lazy.empty or ledger.empty:
        return []
    seen = _split_seen(events, ledger)
    marked = Coverage(ledger, lazy).first_seq()
    folio_idx = np.flatnonzero(
        (seen >= 0) & ~before & (ledger["order"].to_numpy() < PMD_ORDER) & (marked < seen)
    )
    if not len(folio_idx):
        return []
    call_idx = latest_before(
        splitting["process"].to_numpy(np.int64),
        splitting["enter_seq"].to_numpy(),
        ledger["process"].to_numpy(np.int64)[folio_idx],
        seen[folio_idx] + 1,
    )
    found = call_idx >= 0
    safe = np.maximum(call_idx, 0)
    enter = splitting["enter_seq"].to_numpy()[safe]
    # marked lazyfree by this call (a MADV_FREE walk splits as it marks) or an earlier one
    found &= (splitting["exit_seq"].to_numpy()[safe] >= seen[folio_idx]) & (
        (ledger["alloc_seq"].to_numpy()[folio_idx] < enter) & (marked[folio_idx] <= enter)
    )
    if len(unnamed_cuts):
        earliest = unnamed_cuts.groupby("pid")["enter_seq"].min()
        first_cut = earliest.reindex(splitting["pid"].to_numpy()[safe]).to_numpy()
        found &= ~(first_cut < enter)
    folio_idx, call_idx = folio_idx[found], call_idx[found]
    cut_lines.update(ledger["alloc_line"].to_numpy()[folio_idx].tolist())
    split_at.update(
        zip(
            ledger["alloc_line"].to_numpy()[folio_idx].tolist(),
            splitting["enter_seq"].to_numpy()[call_idx].tolist(),
        )
    )
    columns = _CallColumns(splitting)
    sizes = ledger["size_kb"].to_numpy()[folio_idx]
    order, starts, ends = group_runs(call_idx, sizes)
    rows = []
    for first, end in zip(starts.tolist(), ends.tolist()):
        rows.append(
            _base(columns.row(int(call_idx[order[first]])))
            | {
                "size_kb": int(sizes[order[first]]),
                "partial_low": end - first,
                "partial_high": end - first,
                "pmd_mapped": False,
                "deferred_split": True,
                "evidence": "lazyfree folios split inside the call's window (a page of theirs "
                "freed as an order-0 page, or put on an LRU list as a folio of its own): the "
                "call's walk split them where a page table or VMA ends inside them, or where "
                "they were partially mapped already (a copy-on-write copy of one of their pages, "
                "which a trace without fault addresses does not show)",
            }
        )
    return rows


def _cut_by_arithmetic(
    events: EventArrays,
    ledger: pd.DataFrame,
    calls: pd.DataFrame,
    blind: np.ndarray,
    prior: Prior,
) -> list[dict]:
    """Calls with live folios lacking addresses: pages removed but not freed, bounded
    (``prior``: the user pages and any pages allocated before the table, still allocated)."""
    if not blind.any():
        return []
    series = _PidSeries(events, prior)
    # the sizes of the caller's folios alive at each call
    size_kb = ledger["size_kb"].to_numpy()
    alive_sizes = {
        size: live_counts(ledger, calls, size_kb == size) > 0
        for size in np.unique(size_kb).tolist()
    }
    columns = _CallColumns(calls)
    unmapped = _unmapped_edges(calls)
    rows = []
    for call in np.flatnonzero(blind).tolist():
        row = columns.row(call)
        covered = {size for size, alive in alive_sizes.items() if alive[call]}
        if row["call"] in SPLITTING_CALLS:
            pid, enter = int(row["pid"]), int(row["enter_seq"])
            start = int(row["range_start"])
            edges = {
                edge
                for edge in (start, start + int(row["range_len"]))
                if unmapped.get((pid, edge), enter) < enter
                or edge in prior.munmap_edges.get(pid, ())
            }
            rows += _splits_at_ends(row, covered, edges)
            continue
        removed, freed, other = series.window(
            int(row["pid"]), int(row["enter_seq"]), int(row["exit_seq"])
        )
        stayed = removed - freed
        if stayed <= 0:
            continue
        # an anon large folio is naturally aligned in the address space where it was faulted
        # (mm/memory.c alloc_anon_folio(), __do_huge_pmd_anonymous_page()): a range whose both
        # ends are aligned to its size cannot cut it (unless mremap moved it)
        start, length = int(row["range_start"]), int(row["range_len"])
        sizes = sorted(size for size in covered if start % (size * 1024) or length % (size * 1024))
        if not sizes:
            continue
        # pages freed in the window that the trace never saw allocated may be user pages
        # allocated before it began: then nothing need have stayed
        low, high = (1 if stayed > other else 0), min(2, stayed)
        if row["range_len"] <= PAGE_SIZE:
            high = 1
        for size in sizes:
            pmd_mapped = bool(size * 1024 == PAGE_SIZE << PMD_ORDER)
            rows.append(
                _base(row)
                | {
                    "size_kb": int(size),
                    "partial_low": low if len(sizes) == 1 else 0,
                    "partial_high": high,
                    "pmd_mapped": pmd_mapped,
                    "deferred_split": _queued(str(row["call"]), pmd_mapped),
                    "evidence": f"{removed} MM_ANONPAGES pages removed, {stayed} not freed"
                    f" as user pages, {other} pages freed never seen allocated; live folio sizes"
                    f" {sizes} KiB"
                    " (no addresses)",
                }
            )
    return rows


def munmap_edges(events: EventArrays, earlier: dict[int, set[int]]) -> dict[int, set[int]]:
    """Per pid, the addresses where its munmap calls began or ended (``earlier``: those of
    earlier segments), for the MADV_FREE calls of later segments; edges aligned to the PMD size
    cut no folio and are left out."""
    out = {pid: set(edges) for pid, edges in earlier.items()}
    munmap = _munmap_calls(events)
    if munmap.empty:
        return out
    munmap = munmap[munmap["exit_seq"] >= 0]
    pmd = PAGE_SIZE << PMD_ORDER
    for pid, group in munmap.groupby("pid"):
        starts = group["range_start"].astype("int64").to_numpy()
        edges = np.concatenate([starts, starts + group["range_len"].astype("int64").to_numpy()])
        mine = out.setdefault(int(pid), set())
        mine.update(int(e) for e in edges[edges % pmd != 0][-MAX_EDGES:])
        if len(mine) > MAX_EDGES:
            out[int(pid)] = set(sorted(mine)[-MAX_EDGES:])
    return out


def _unmapped_edges(calls: pd.DataFrame) -> dict[tuple[int, int], int]:
    """Per (pid, address) where a munmap of the pid began or ended, the seq of the first such
    call: from then on a mapping's edge is there, which no folio straddles."""
    munmap = calls[(calls["call"] == "munmap").to_numpy()]
    starts = munmap["range_start"].astype("int64").to_numpy()
    edges = pd.DataFrame(
        {
            "pid": np.tile(munmap["pid"].to_numpy(np.int64), 2),
            "edge": np.concatenate([starts, starts + munmap["range_len"].astype("int64")]),
            "seq": np.tile(munmap["enter_seq"].to_numpy(np.int64), 2),
        }
    )
    first = edges.groupby(["pid", "edge"])["seq"].min()
    return dict(zip(first.index.tolist(), first.tolist()))


def _splits_at_ends(row: Mapping, live_sizes: set[int], edges: set[int]) -> list[dict]:
    """A splitting call (:data:`SPLITTING_CALLS`) without addresses: per live folio size, each
    end of the range not aligned to it may split one folio (anon folios are naturally aligned),
    unless the end is a mapping's edge (``edges``: the range's ends where an earlier munmap
    began or ended); none need have (the folio may be shared, locked, or absent there):
    bounds [0, ends]."""
    start, end = int(row["range_start"]), int(row["range_start"]) + int(row["range_len"])
    rows = []
    for size in sorted(live_sizes):
        block = size * 1024
        ends = {e // block for e in (start, end) if e % block and e not in edges}
        if not ends:
            continue
        pmd_mapped = bool(block == PAGE_SIZE << PMD_ORDER)
        rows.append(
            _base(row)
            | {
                "size_kb": int(size),
                "partial_low": 0,
                "partial_high": len(ends),
                "pmd_mapped": pmd_mapped,
                "deferred_split": _queued(str(row["call"]), pmd_mapped),
                "evidence": f"{SPLITTING_CALLS[row['call']]} range ends not aligned to {size} "
                "KiB: a folio there is split (no addresses)",
            }
        )
    return rows
