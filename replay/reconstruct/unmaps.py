"""Per-folio unmap records of each reclaim episode, and how the captured kernel unmapped them.

Evidence, per episode (the reclaiming thread's events inside the episode window):
- discarded folios: ledger folios freed whole (``mm_page_free``, same pfn and order) in the
  window;
- folios reclaim isolated and put back (``mm_lru_insertion`` of their pfn in the window:
  reclaim failed or is waiting for writeback): ``kept`` when the flags say the folio is still
  mapped (``M``), ``unmapped`` when it is not (a swap-backed folio under writeback to a swap
  device, its PTEs replaced by swap entries). For MADV_PAGEOUT without that event in the trace
  (older captures), the caller's folios alive across the window and inside the advised range
  (x86 addresses) are the kept ones;
- how they were unmapped: the ``rss_stat`` steps in the window (of the caller's own mm for
  madvise(MADV_PAGEOUT), of every mm otherwise: process_madvise, kswapd, direct and memcg
  reclaim unmap other tasks' folios), counter by counter: MM_ANONPAGES for anonymous folios,
  MM_FILEPAGES / MM_SHMEMPAGES for page-cache and shmem folios. A step of -N pages for an
  N-page folio is one batched unmap (6.15+ 354dffd29575 for lazyfree, 7.0+ a67fe41e214f for
  file folios, or a PMD), steps of -1 are per-PTE unmaps, steps of each run's length a
  batched unmap of a folio whose PTEs' write bits differ (:mod:`.write_runs`, 29f40594a281),
  two adjacent steps that make a folio's pages a batch ended at a page-table or VMA end
  (6.16+ folio_unmap_pte_batch() stops at pmd_addr_end(addr, vma->vm_end)), and where x86
  faults cannot show the write runs (arm64, riscv, page-cache and shmem folios), two or more
  adjacent steps either
  (``batch_starts``: the pages at which the later batches started).
  x86 ``tlb_flush`` page counts are recorded as corroboration only: arm64 and riscv traces
  have no tlb_flush event.
- each folio's kind (:mod:`.kinds`);
- kept folios freed or split after the episode were zapped later (``zapped_later``);
- redirtied lazyfree folios: on a per-page kernel, a kept folio lost the PTEs before its first
  dirty page; the -1 steps left after discarded folios and small pages are those pages. Zero
  left means every kept folio was dirty at page 0, the maximum (nr_pages - 1 each) that every
  one was dirty at its last page; anything else, and any batched kernel (which restores the
  whole batch), leaves the dirty page unknown (UNKNOWN_DIRTY_PAGE).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
from folio_replay.replay.folio import UNKNOWN_DIRTY_PAGE
from folio_replay.replay.reconstruct.episodes import Windows, lost_end
from folio_replay.replay.reconstruct.events import MISSING, EventArrays
from folio_replay.replay.reconstruct.joins import (
    categorical,
    categorical_of_codes,
    codes,
    equals,
    group_runs,
    latest_before,
    nullable,
)
from folio_replay.replay.reconstruct.kinds import KindEvidence, member_of_kind
from folio_replay.replay.reconstruct.ledger import MAX_ORDER_KEY
from folio_replay.replay.reconstruct.partial import PMD_ORDER
from folio_replay.replay.reconstruct.rss import MEMBERS, RssSteps
from folio_replay.replay.reconstruct.write_runs import run_starts

__all__ = ["FOLIO_COLUMNS", "SIGNATURE_COLUMNS", "episode_folios"]

# tlb_flush reason TLB_FLUSH_ON_TASK_SWITCH (include/linux/mm_types.h): a context switch, not
# an unmap (parsers/events.toml maps the reason numbers to the enum names).
TASK_SWITCH = "TLB_FLUSH_ON_TASK_SWITCH"
PAGEOUT = "madvise_pageout"
PAGEOUT_KINDS = (PAGEOUT, "process_madvise_pageout")
# a swap-backed folio MADV_PAGEOUT split with no swap device at all: its pages kept
NO_SWAP_SPLIT = "split_kept"
CLEAN = -2  # dirty_page of a clean folio while records are built (null in the table)
ANON, FILE, SWAPENTS, SHMEM = (
    MEMBERS.index(m) for m in ("MM_ANONPAGES", "MM_FILEPAGES", "MM_SWAPENTS", "MM_SHMEMPAGES")
)

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
    "kind",
    "kind_evidence",
    "outcome",
    "captured_unmap",
    "dirty_page",
    "zapped_later",
    "write_run_starts",
    "batch_starts",
    "evidence",
]
SIGNATURE_COLUMNS = [
    "episode",
    "rss_steps",
    "file_rss_steps",
    "swap_entries",
    "tlb_flush_pages",
    "small_discards",
    "small_swapped",
    "small_file",
    "small_other",
    "captured_mode",
    "captured_mode_evidence",
    "captured_file_mode",
    "kept_per_page_steps",
    "owners",
]


def _grouped(where: np.ndarray, n: int) -> list[np.ndarray]:
    """For each of ``n`` episodes, the indices i with ``where[i]`` == that episode."""
    order = np.argsort(where, kind="stable")
    bounds = np.searchsorted(where[order], np.arange(n + 1))
    return [order[bounds[e] : bounds[e + 1]] for e in range(n)]


def _runs_by_episode(episode: np.ndarray, values: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """``values`` grouped by ``episode``: (episode, its values in their order) for each episode
    that has any."""
    order, starts, ends = group_runs(episode)
    return [
        (int(episode[order[a]]), values[order[a:b]]) for a, b in zip(starts.tolist(), ends.tolist())
    ]


def _records(
    events: EventArrays, ledger: pd.DataFrame, episodes: pd.DataFrame, windows: Windows
) -> pd.DataFrame:
    """(episode, folio row, outcome, put-back seq) of every folio reclaim met."""
    frames = []
    freed = np.flatnonzero(equals(ledger["end"], "freed"))
    where = windows.locate(ledger["end_pid"].to_numpy()[freed], ledger["end_seq"].to_numpy()[freed])
    hit = where >= 0
    frames.append(pd.DataFrame({"episode": where[hit], "row": freed[hit], "outcome": "discarded"}))
    lru = events.rows("mm_lru_insertion")
    if len(lru):
        where = windows.locate(events.pid[lru], lru)
        inside = where >= 0
        lru, where = lru[inside], where[inside]
        pfn = events.ints("lru_insertion.pfn", lru)
        owner = latest_before(ledger["pfn"].to_numpy(), ledger["alloc_seq"].to_numpy(), pfn, lru)
        end = ledger["end_seq"].to_numpy()
        alive = (owner >= 0) & ((end[np.maximum(owner, 0)] < 0) | (end[np.maximum(owner, 0)] > lru))
        codes, flags = events.codes("lru_insertion.flags", lru)
        mapped = np.array(["M" in f for f in flags], dtype=bool)[codes]
        frames.append(
            pd.DataFrame(
                {
                    "episode": where[alive],
                    "row": owner[alive],
                    "outcome": np.where(mapped[alive], "kept", "unmapped"),
                }
            )
        )
    else:
        frames.append(_kept_without_putbacks(ledger, episodes))
    # a folio reclaim split to swap it out page by page comes first: its head was put back
    # or freed as a small page
    frames.insert(0, _swap_fallback_records(events, ledger, windows))
    records = pd.concat(frames, ignore_index=True)
    records = records.drop_duplicates(["episode", "row"], keep="first")
    records = records.astype({"episode": np.int64, "row": np.int64})
    return records.sort_values(["episode", "row"], kind="stable").reset_index(drop=True)


def _unidentified_kept(
    folios: pd.DataFrame, ledger: pd.DataFrame, episodes: pd.DataFrame, kinds: KindEvidence
) -> pd.DataFrame:
    """Folios LRU reclaim failed to unmap (redirtied lazyfree ones, kept and activated) that
    the trace does not name: shrink_folio_list() puts them back with move_folios_to_lru(),
    which emits no event, but mm_vmscan_lru_shrink_inactive counts their pages in
    ``nr_unmap_fail``. Where the pages not accounted for by named kept folios divide into
    folios of the one size the episode's processes have alive, that many kept records are
    added (``folio`` -1: which folios is not in the trace)."""
    frames = []
    lru_reclaim = ~episodes["kind"].isin(PAGEOUT_KINDS).to_numpy()
    named = folios[folios["outcome"] == "kept"].groupby("episode")["nr_pages"].sum()
    alloc, end = ledger["alloc_seq"].to_numpy(), ledger["end_seq"].to_numpy()
    anon = ledger["file_seq"].to_numpy() < 0
    for episode in np.flatnonzero(lru_reclaim & (episodes["nr_unmap_fail"].to_numpy() > 0)):
        extra = int(episodes["nr_unmap_fail"].iat[episode]) - int(named.get(episode, 0))
        start = int(episodes["start_seq"].iat[episode])
        alive = anon & (alloc < start) & ((end < 0) | (end > start))
        sizes = np.unique(ledger["nr_pages"].to_numpy()[alive])
        if extra <= 0 or len(sizes) != 1 or extra % int(sizes[0]):
            continue
        candidates = ledger[alive].assign(episode=episode, outcome="kept")
        kind = pd.Series(kinds.decide(candidates, episodes)[0]).mode().iat[0]
        count = extra // int(sizes[0])
        model = candidates.iloc[[0] * count].reset_index(drop=True)
        frames.append(
            model.assign(
                folio=MISSING,
                pfn=MISSING,
                address=pd.NA,
                alloc_seq=MISSING,
                end_seq=MISSING,
                end="alive",
                evidence="mm_vmscan_lru_shrink_inactive nr_unmap_fail",
                kind=kind,
                kind_evidence=f"{kind}: the episode's processes' live folios of this "
                f"size ({len(candidates)}); nr_unmap_fail {extra} pages not named in the trace",
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else folios.iloc[0:0]


def _pmd_mapped(
    folios: pd.DataFrame, episodes: pd.DataFrame, earlier: bool
) -> pd.arrays.BooleanArray:
    """Whether each PMD-sized folio was still PMD-mapped: null (either) for a swap-backed one
    reclaimed after an episode (of this segment, or ``earlier``) that kept unnamed PMD-sized
    folios (a failed unmap may have split its PMD first, per release)."""
    pmd = folios["order"].to_numpy() == PMD_ORDER
    unknown = np.zeros(len(folios), dtype=bool)
    unnamed = folios[(folios["folio"] == MISSING) & pmd]
    if earlier or not unnamed.empty:
        start = episodes["start_seq"].to_numpy()
        first = -1 if earlier else start[unnamed["episode"].to_numpy()].min()
        unknown = (
            pmd
            & equals(folios["kind"], "swapbacked")
            & (start[folios["episode"].to_numpy()] > first)
        )
    return pd.arrays.BooleanArray(pmd, unknown)


def _swap_fallback_records(
    events: EventArrays, ledger: pd.DataFrame, windows: Windows
) -> pd.DataFrame:
    """Large anonymous folios written to swap page by page in an episode
    (``mm_vmscan_write_folio`` RECLAIM_WB_ANON of a pfn inside the folio other than its
    first): no swap slot for the whole folio, so reclaim split it first (outcome ``split``)."""
    rows = events.rows("mm_vmscan_write_folio")
    codes, flags = events.codes("vmscan.flags", rows)
    anon = (
        np.array(["RECLAIM_WB_ANON" in f for f in flags], dtype=bool)[codes]
        if len(rows)
        else np.zeros(0, dtype=bool)
    )
    rows = rows[anon]
    where = windows.locate(events.pid[rows], rows)
    rows, where = rows[where >= 0], where[where >= 0]
    pfn = events.ints("vmscan.pfn", rows)
    key = ledger["pfn"].to_numpy() * MAX_ORDER_KEY + ledger["order"].to_numpy()
    alloc, end = ledger["alloc_seq"].to_numpy(), ledger["end_seq"].to_numpy()
    frames = []
    for order in np.unique(ledger["order"].to_numpy()):
        base = pfn - pfn % (1 << int(order))
        owner = latest_before(key, alloc, base * MAX_ORDER_KEY + order, rows)
        hit = (owner >= 0) & (pfn != base)
        hit[hit] &= (end[owner[hit]] < 0) | (end[owner[hit]] >= rows[hit])
        frames.append(pd.DataFrame({"episode": where[hit], "row": owner[hit], "outcome": "split"}))
    return (
        pd.concat(frames, ignore_index=True).drop_duplicates()
        if frames
        else pd.DataFrame({"episode": [], "row": [], "outcome": []})
    )


def _kept_without_putbacks(ledger: pd.DataFrame, episodes: pd.DataFrame) -> pd.DataFrame:
    """MADV_PAGEOUT in a trace without mm_lru_insertion: the caller's folios alive across the
    closed window and inside the advised range (where addresses are known)."""
    frames = []
    alloc = ledger["alloc_seq"].to_numpy()
    end = ledger["end_seq"].to_numpy()
    address = ledger["address"].to_numpy(dtype=np.float64, na_value=np.nan)
    for episode in episodes[
        (episodes["kind"] == PAGEOUT) & (episodes["end_seq"] >= 0)
    ].itertuples():
        keep = (
            (ledger["pid"].to_numpy() == episode.pid)
            & (alloc < episode.start_seq)
            & ((end < 0) | (end > episode.end_seq))
        )
        if not pd.isna(episode.range_start):
            lo, hi = episode.range_start, episode.range_start + episode.range_len
            keep &= np.isnan(address) | ((address >= lo) & (address < hi))
        rows = np.flatnonzero(keep)
        frames.append(pd.DataFrame({"episode": episode.episode, "row": rows, "outcome": "kept"}))
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame({"episode": [], "row": [], "outcome": []})
    )


def _counted_by_episode(episode: np.ndarray, values: np.ndarray) -> dict[int, Counter]:
    """Per episode that has any of ``values``, how many times each occurs (values ascending)."""
    order, starts, ends = group_runs(episode, values)
    first = order[starts]
    counted: dict[int, Counter] = {}
    for e, value, count in zip(
        episode[first].tolist(), values[first].tolist(), (ends - starts).tolist()
    ):
        counted.setdefault(e, Counter())[value] = count
    return counted


def _signatures(
    events: EventArrays,
    episodes: pd.DataFrame,
    windows: Windows,
    rss: RssSteps,
    lazy_mms: np.ndarray,
) -> tuple[
    list[dict[int, Counter]],
    list[dict[int, np.ndarray]],
    np.ndarray,
    list[Counter],
    np.ndarray,
    np.ndarray,
]:
    """Per episode: removed pages per rss step, by counter, counted and in trace order; swap
    entries added; x86 unmap flushes by pages; order-0 pages freed; MM_ANONPAGES -1 steps of
    the mms of processes that called MADV_FREE (``lazy_mms``: the only ones with lazyfree pages
    to discard)."""
    n = len(episodes)
    where = windows.locate(rss.pid, rss.seq)
    own = episodes["kind"].to_numpy() == PAGEOUT
    keep = (where >= 0) & (~own[np.maximum(where, 0)] | (rss.curr == 1)) if n else where >= 0
    steps: list[dict[int, Counter]] = [{} for _ in range(n)]
    in_order: list[dict[int, np.ndarray]] = [{} for _ in range(n)]
    chosen = np.flatnonzero(keep)  # in trace order
    episode = where[chosen]
    member, pages = rss.member[chosen], rss.pages[chosen]
    is_lazy_single = (member == ANON) & (pages == -1) & np.isin(rss.mm_id[chosen], lazy_mms)
    lazy_single = np.bincount(episode[is_lazy_single], minlength=n).astype(np.int64)
    for m in (ANON, FILE, SHMEM):
        removing = (member == m) & (pages < 0)
        for e, removed in _runs_by_episode(episode[removing], -pages[removing]):
            in_order[e][m] = removed
        for e, counted in _counted_by_episode(episode[removing], -pages[removing]).items():
            steps[e][m] = counted
    # a first MM_SWAPENTS event of an mm has no step: one inc_mm_counter(), one PTE
    swaps = member == SWAPENTS
    swap = np.zeros(n, dtype=np.int64)
    np.add.at(swap, episode[swaps], np.where(pages[swaps] > 0, pages[swaps], 0))
    swap += np.bincount(episode[swaps & rss.first[chosen]], minlength=n).astype(np.int64)
    flushes: list[Counter] = [Counter() for _ in range(n)]
    rows = events.rows("tlb_flush")
    if len(rows):
        where = windows.locate(events.pid[rows], rows)
        reasons, names = events.codes("tlb_flush.reason", rows)
        unmap = (where >= 0) & ~(np.asarray(names, dtype=object)[reasons] == TASK_SWITCH)
        pages = events.ints("tlb_flush.pages", rows)
        for e, counted in _counted_by_episode(where[unmap], pages[unmap]).items():
            flushes[e] = counted
    frees = events.rows("mm_page_free")
    frees = frees[events.ints("page.order", frees) == 0]
    where = windows.locate(events.pid[frees], frees)
    small = np.bincount(where[where >= 0], minlength=n).astype(np.int64)
    return steps, in_order, swap, flushes, small, lazy_single


def _stepped(
    nr: np.ndarray, rest: np.ndarray, unused: Counter, in_order: np.ndarray, most: int
) -> dict[int, tuple[int, ...]]:
    """Folios (of ``rest``, indices into ``nr``) unmapped in several batches: adjacent rss steps
    (``in_order``: the episode's steps of the counter in trace order), at most ``most`` of them
    and at least one of several pages (single-page steps alone are a per-PTE unmap), that make
    a waiting folio's pages. A batch ends at pmd_addr_end(addr, vma->vm_end) (6.16+
    folio_unmap_pte_batch(): a folio moved by mremap, its VMA cut by mprotect) or, since
    29f40594a281, where the PTEs' write bits change (after a fork, a write to page 1 leaves
    runs 0 | 1 | 2-15: three batches). The leftmost window wins, of those starting at one step
    the shortest; a step is used once. ``unused`` loses the steps used. Returns {index: the
    pages at which each later batch started}."""
    if len(in_order) < 2 or not (in_order > 1).any():  # no window has a multi-page step
        return {}
    waiting = {int(size): rest[nr[rest] == size].tolist() for size in np.unique(nr[rest])}
    if not waiting:
        return {}
    total = np.concatenate([[0], np.cumsum(in_order)])  # pages removed before each step
    several = np.concatenate([[0], np.cumsum(in_order > 1)])
    end = np.arange(1, len(total))
    windows = []
    for size in waiting:
        start = np.minimum(np.searchsorted(total, total[end] - size), len(in_order))
        steps = end - start
        fits = (total[start] == total[end] - size) & (steps >= 2) & (steps <= most)
        fits &= several[end] > several[start]
        windows.append(np.stack([start[fits], steps[fits]], axis=1))
    found = np.concatenate(windows)
    found = found[np.lexsort((found[:, 1], found[:, 0]))]
    cut: dict[int, tuple[int, ...]] = {}
    free_from = 0  # the first step not used by a window taken
    left = len(rest)
    for start, steps in found.tolist():
        window = in_order[start : start + steps].tolist()
        mine = waiting[sum(window)]
        need = Counter(window)
        if start < free_from or not mine or any(unused[s] < c for s, c in need.items()):
            continue
        unused.subtract(need)
        cut[mine.pop(0)] = tuple(np.cumsum(window[:-1]).tolist())
        free_from = start + steps
        left -= 1
        if not left:
            break
    return cut


KEPT_CAPPED = (
    "batched kernel, a multi-page rss_stat step no unmapped folio took: its first batch "
    "(batch_starts pages, to a page-table or VMA end) unmapped, a later one redirtied and "
    "restored, so its dirty page is at or after batch_starts"
)


def _kept_capped(nr: np.ndarray, unused: Counter) -> np.ndarray:
    """Kept folios (``nr`` pages each) whose first capped batch was unmapped before a later
    batch, redirtied, was restored (try_to_unmap_one() aborts the walk there, 6.16+): each
    takes a step of k pages, 1 < k < its pages, that no unmapped folio took (a single page is
    left to small pages). ``unused`` loses the steps used. Returns each folio's k (0: none)."""
    limits = np.zeros(len(nr), dtype=np.int64)
    for i, pages in enumerate(nr.tolist()):
        fits = [k for k, count in unused.items() if count > 0 and 1 < k < pages]
        if fits:
            limits[i] = max(fits)
            unused[limits[i]] -= 1
    return limits


def _match(
    nr: np.ndarray,
    order: np.ndarray,
    unused: Counter,
    starts: np.ndarray,
    in_order: np.ndarray,
    most_steps: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Assign rss steps to the episode's unmapped folios of one counter (``nr`` pages and
    ``order`` each, in allocation order; ``starts``: their write runs, :mod:`.write_runs`;
    ``in_order``: the steps in trace order): one step of -N pages (batched, or pmd for a
    PMD-sized folio), else one step per run of alike PTEs (batched_runs), else two adjacent
    steps that make the folio (batched_capped) or three or more, up to ``most_steps``
    (batched_steps, :func:`_stepped`), else N steps of -1 (per_page), else unknown. ``unused``
    loses the steps used. Returns each folio's unmap and the pages at which its later batches
    started ("8", "1,2"; "" for one batch)."""
    how = np.full(len(nr), "unknown", dtype=object)
    batch_starts = np.full(len(nr), "", dtype=object)
    rest = []
    for size in np.unique(nr):
        same = np.flatnonzero(nr == size)
        take = min(len(same), unused[int(size)])
        unused[int(size)] -= take
        how[same[:take]] = np.where(order[same[:take]] == PMD_ORDER, "pmd", "batched")
        rest.append(same[take:])
    rest_idx = np.sort(np.concatenate(rest)) if rest else np.empty(0, np.int64)
    in_runs = np.array([bool(starts[i]) for i in rest_idx.tolist()], dtype=bool)
    for text in sorted(set(starts[rest_idx[in_runs]].tolist())):
        for i in rest_idx[in_runs & (starts[rest_idx] == text)].tolist():
            runs = Counter(np.diff([0, *map(int, text.split(",")), int(nr[i])]).tolist())
            if all(unused[length] >= count for length, count in runs.items()):
                unused.subtract(runs)
                how[i] = "batched_runs"
    rest_idx = rest_idx[how[rest_idx] == "unknown"]
    if len(rest_idx):
        for i, pages in _stepped(nr, rest_idx, unused, in_order, most_steps).items():
            how[i] = "batched_capped" if len(pages) == 1 else "batched_steps"
            batch_starts[i] = ",".join(map(str, pages))
        rest_idx = rest_idx[how[rest_idx] == "unknown"]
    need = nr[rest_idx]
    per_page = 0
    if need.sum() <= unused[1]:
        how[rest_idx] = "per_page"
        per_page = int(need.sum())
    else:
        for i, pages in zip(rest_idx.tolist(), need.tolist()):
            if unused[1] - per_page >= pages:
                how[i] = "per_page"
                per_page += pages
    unused[1] -= per_page
    return how, batch_starts


def captured_mode(
    steps: Counter, flushes: Counter, per_page_pages: int, leftover: int, kept: np.ndarray
) -> tuple[str, str]:
    """How the captured kernel unmapped lazyfree large folios in the episode: ``per_page``,
    ``batched`` or ``undecided``, with the evidence.

    rss_stat decides when large folios were discarded (steps of -1 vs -N) or kept folios lost
    pages; when every large folio was kept whole, only x86 ``tlb_flush`` can tell: a batched
    kernel clears and flushes the whole folio before restoring it, a per-page one the first PTE.
    A PMD-mapped folio is unmapped in one step by every kernel, so it decides nothing.
    ``kept``: the pages of each kept folio.
    """
    if per_page_pages or leftover:
        return (
            "per_page",
            f"rss_stat: {per_page_pages + leftover} single-page steps of large folios",
        )
    if any(count for size, count in steps.items() if 1 < size < 1 << PMD_ORDER):
        return "batched", "rss_stat: multi-page steps of PTE-mapped folios"
    if len(kept):
        sizes = set(kept.tolist())
        if sum(flushes[size] for size in sizes) >= len(kept):
            return "batched", "tlb_flush: one flush of the folio's pages per kept folio"
        if flushes[1] >= len(kept):
            return "per_page", "tlb_flush: single-page flushes, no rss_stat step"
    return "undecided", (
        "no rss_stat step or tlb_flush that tells how lazyfree PTE-mapped large folios were "
        "unmapped (a PMD-mapped one is unmapped in one step by every kernel)"
    )


def _file_mode(steps: Counter, how: np.ndarray) -> str:
    """How the captured kernel unmapped PTE-mapped file folios: per_page (before 7.0),
    batched (7.0+, a67fe41e214f) or undecided."""
    kinds = set(how.tolist()) - {"pmd", "unknown"}
    if "per_page" in kinds:
        return "per_page"
    if "batched" in kinds or any(
        count for size, count in steps.items() if 1 < size < 1 << PMD_ORDER
    ):
        return "batched"
    return "undecided"


def _dirty_page(kept: np.ndarray, leftover: int, mode: str, contpte: bool) -> tuple[int, str]:
    """The dirty page shared by every kept lazyfree folio (``kept``: the pages of each) when
    the trace decides it, and why.

    With arm64 contpte, clearing the first PTE unfolds its 16-page block and ORs the block's
    dirty bits into every PTE (arch/arm64/mm/contpte.c contpte_convert()): a folio that lost
    no page was dirty somewhere in its first block, not necessarily at page 0.
    """
    if mode != "per_page":
        return UNKNOWN_DIRTY_PAGE, f"{mode} unmap: the dirty page is not in the trace"
    if contpte:
        return UNKNOWN_DIRTY_PAGE, (
            f"per-page kernel, {leftover} -1 rss steps left, but contpte unfolding gathers a "
            "block's dirty bits: page unknown within the first dirty block"
        )
    lost, rest = divmod(leftover, len(kept))
    if rest or len(np.unique(kept)) != 1 or lost >= int(kept[0]):
        return UNKNOWN_DIRTY_PAGE, (
            f"per-page kernel, {leftover} -1 rss steps left for {len(kept)} kept folios: dirty "
            "page unknown"
        )
    return lost, (
        f"per-page kernel, {leftover} -1 rss steps left = every kept folio lost its first "
        f"{lost} pages: dirty at page {lost}"
    )


UNMAP_EVIDENCE = {
    "batched": "freed in episode; one rss_stat step of the folio's pages",
    "pmd": "freed in episode; one rss_stat step of -512 pages (PMD)",
    "batched_runs": (
        "freed in episode; one rss_stat step per run of PTEs with alike write bits (x86 "
        "write-protect faults inside the folio before the episode)"
    ),
    "batched_capped": (
        "freed in episode; two adjacent rss_stat steps that make its pages: a batch ended at "
        "a page-table or VMA end, or, where faults cannot show them, at a run of other write "
        "bits (batch_starts: the first one's pages)"
    ),
    "batched_steps": (
        "freed in episode; three or more adjacent rss_stat steps that make its pages: batches "
        "ended at runs of other write bits or at page-table or VMA ends, which a trace without "
        "write-protect faults does not tell apart (batch_starts: where each later one started)"
    ),
    "per_page": "freed in episode; one rss_stat step of -1 per page",
    "unknown": "freed in episode; no rss_stat steps left to account for it",
}


def _evidence(folios: pd.DataFrame, kept: np.ndarray, kept_why: np.ndarray) -> pd.Categorical:
    """Each record's evidence text, composed from a few templates (ledger, unmap, kept:
    whether each record's outcome is ``kept``)."""
    unmap = np.full(len(folios), "", dtype=object)
    unmap[kept] = "alive across episode; " + kept_why[kept]
    unmap[equals(folios["outcome"], "unmapped")] = "put back unmapped (writeback pending)"
    parts = [
        codes(folios["evidence"]),
        codes(folios["kind_evidence"]),
        codes(folios["captured_unmap"]),
        codes(pd.Series(unmap)),
    ]
    sizes = [len(uniques) for _, uniques in parts]
    combined = np.zeros(len(folios), dtype=np.int64)
    for (code, _), size in zip(parts, sizes):
        combined = combined * size + code
    distinct, inverse = np.unique(combined, return_inverse=True)
    texts = []
    for value in distinct.tolist():
        picked = []
        for (_, uniques), size in zip(reversed(parts), reversed(sizes)):
            picked.append(uniques[value % size])
            value //= size
        base, kind, how, extra = reversed(picked)
        text = f"{base}; {kind}"
        text += "; " + (extra if extra else UNMAP_EVIDENCE.get(how, how))
        texts.append(text)
    # an outcome's own text (kept, put back unmapped) replaces the unmap's: combinations that
    # differ only in the unmap give one text
    text_code, unique_texts = pd.factorize(np.asarray(texts, dtype=object))
    return categorical_of_codes(text_code[inverse.reshape(-1)], unique_texts)


def no_swap_splits(folios: pd.DataFrame, episodes: pd.DataFrame) -> pd.DataFrame:
    """``folios`` of a capture made with no swap device at all (the bundle's meta.json
    ``swaps``), their outcome where that decides it: MADV_PAGEOUT (reclaim_pages() ->
    shrink_folio_list(), mm/vmscan.c, 6.12 .. 7.3 and 6.18) meets a swap-backed large folio,
    folio_alloc_swap() fails, so the folio is split (split_folio_to_list(), swpout_fallback)
    and its first order-0 page finds no slot either (activate_locked_split): a swap-backed
    record the trace shows kept in a MADV_PAGEOUT episode becomes :data:`NO_SWAP_SPLIT`. LRU
    reclaim does not scan anon folios without swap (can_reclaim_anon_pages()), so its kept
    records stay kept. ``episodes`` are numbered by position, as :func:`episode_folios`'s."""
    in_pageout = episodes["kind"].isin(PAGEOUT_KINDS).to_numpy()[folios["episode"].to_numpy()]
    split = in_pageout & equals(folios["outcome"], "kept") & equals(folios["kind"], "swapbacked")
    if not split.any():
        return folios
    folios = folios.copy()
    outcome = folios["outcome"].to_numpy(dtype=object)
    outcome[split] = NO_SWAP_SPLIT
    folios["outcome"] = categorical(outcome)
    evidence = folios["evidence"].to_numpy(dtype=object)
    evidence[split] = [
        f"{text}no swap device: split, its pages kept" for text in evidence[split].tolist()
    ]
    folios["evidence"] = categorical(evidence)
    zapped = folios["zapped_later"].array.copy()
    zapped[split] = False  # not kept: its later unmap is of order-0 pages
    folios["zapped_later"] = zapped
    return folios


# columns of the per-record matrix episode_folios() matches episodes by
_KEPT, _MEMBER, _NR, _ORDER, _SWAPBACKED, _LAZYFREE, _IN_LAZY_MM, _STARTS = range(8)


@dataclass(frozen=True)
class _EpisodeUnmaps:
    """What :func:`_episode_unmaps` found for one episode's records (aligned with them)."""

    how: np.ndarray
    batch_starts: np.ndarray
    kept_why: np.ndarray
    dirty: np.ndarray
    signature: dict  # the episode's SIGNATURE_COLUMNS but episode and owners


def _episode_unmaps(
    rows: np.ndarray,
    starts: np.ndarray,
    steps: dict[int, Counter],
    in_order: dict[int, np.ndarray],
    flushes: Counter,
    counts: tuple[int, int, int],
    runs_known: bool,
    most_steps: int,
    contpte: bool,
) -> _EpisodeUnmaps:
    """Match one episode's rss steps to its folio records (``rows``: one per record, columns
    ``_KEPT`` ..; ``starts``: their write runs), member by member, and settle how the captured
    kernel unmapped its lazyfree folios and where kept ones were dirty; ``counts``: the
    episode's swap entries added, order-0 pages freed and single-page steps of MADV_FREE
    callers' mms; ``runs_known``: x86 faults show anonymous folios' write runs."""
    swap, small, lazy_single = counts
    n = len(rows)
    unmap = np.full(n, "unknown", dtype=object)
    batch_starts = np.full(n, "", dtype=object)
    kept_why = np.full(n, "", dtype=object)
    dirty = np.full(n, CLEAN, dtype=np.int64)
    kept = rows[:, _KEPT].astype(bool)
    member = rows[:, _MEMBER]
    pages = rows[:, _NR]
    used: dict[int, Counter] = {m: Counter(steps.get(m, Counter())) for m in (ANON, FILE, SHMEM)}
    lazy_per_page = swapped_pages = consumed_lazy_mm = 0
    file_how = np.empty(0, dtype=object)
    for m in (ANON, FILE, SHMEM):
        chosen = np.flatnonzero(~kept & (member == m))
        if not len(chosen):
            continue
        how, batch_starts[chosen] = _match(
            pages[chosen],
            rows[chosen, _ORDER],
            used[m],
            starts[chosen],
            in_order.get(m, np.empty(0, np.int64)),
            2 if m == ANON and runs_known else most_steps,
        )
        unmap[chosen] = how
        if m == ANON:
            nr = pages[chosen]
            lazy = rows[chosen, _SWAPBACKED] == 0
            lazy_per_page = int(nr[lazy & (how == "per_page")].sum())
            swapped_pages = int(nr[~lazy].sum())
            in_lazy_mm = rows[chosen, _IN_LAZY_MM].astype(bool)
            consumed_lazy_mm = int(nr[(how == "per_page") & in_lazy_mm].sum())
        else:
            file_how = np.concatenate([file_how, how])
    # single-page steps left: those of processes that called MADV_FREE may be small
    # lazyfree pages discarded, the others small swap-backed pages swapped out
    lazy_left = min(used[ANON][1], max(0, lazy_single - consumed_lazy_mm))
    other_left = max(0, used[ANON][1] - lazy_left)
    small_swapped = max(0, swap - swapped_pages)
    small_discards = max(
        0, min(small - used[FILE][1], lazy_left) - max(0, small_swapped - other_left)
    )
    leftover = used[ANON][1] - min(small, used[ANON][1])
    kept_index = np.flatnonzero(kept & (rows[:, _LAZYFREE] == 1))
    mode, mode_why = captured_mode(
        steps.get(ANON, Counter()), flushes, lazy_per_page, leftover, pages[kept_index]
    )
    if len(kept_index):
        page, why = _dirty_page(pages[kept_index], leftover, mode, contpte)
        dirty[kept_index] = page
        unmap[kept_index] = mode
        kept_why[kept_index] = why
        if mode == "batched":
            limits = _kept_capped(pages[kept_index], used[ANON])
            capped = kept_index[limits > 0]
            batch_starts[capped] = limits[limits > 0].astype(str)
            unmap[capped] = "batched_capped"
            kept_why[capped] = KEPT_CAPPED
    signature = {
        "rss_steps": dict(sorted(steps.get(ANON, Counter()).items())),
        "file_rss_steps": dict(
            sorted((steps.get(FILE, Counter()) + steps.get(SHMEM, Counter())).items())
        ),
        "swap_entries": swap,
        "tlb_flush_pages": dict(sorted(flushes.items())),
        "small_discards": small_discards,
        "small_swapped": small_swapped,
        "small_file": used[FILE][1] + used[SHMEM][1],
        # single-page anon steps of processes without MADV_FREE, not swapped out
        "small_other": max(0, other_left - small_swapped),
        "captured_mode": mode,
        "captured_mode_evidence": mode_why,
        "captured_file_mode": _file_mode(steps.get(FILE, Counter()), file_how),
        "kept_per_page_steps": leftover,
    }
    return _EpisodeUnmaps(unmap, batch_starts, kept_why, dirty, signature)


def _copied(signature: dict) -> dict:
    """A signature's fields, its dicts copied (episodes matched alike share one)."""
    return {k: dict(v) if isinstance(v, dict) else v for k, v in signature.items()}


def _owners(pids: np.ndarray, grouped: list[np.ndarray]) -> list[str]:
    """Each episode's owners text: "pid:records" per pid of its records, pids ascending."""
    texts = []
    for index in grouped:
        owners, counts = np.unique(pids[index], return_counts=True)
        texts.append(",".join(f"{pid}:{c}" for pid, c in zip(owners.tolist(), counts.tolist())))
    return texts


def episode_folios(
    events: EventArrays,
    ledger: pd.DataFrame,
    episodes: pd.DataFrame,
    rss: RssSteps,
    kinds: KindEvidence,
    contpte: bool,
    write_faults: pd.DataFrame | None,
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """The folio records of every episode, each episode's signature summary, and the order-0
    ``mm_page_free`` rows of each episode's thread inside it; ``contpte``: the capture's arch
    maps large folios with contiguous-PTE blocks (arm64); ``write_faults``: the write-protect
    faults inside ledger folios (:func:`.write_runs.write_protect_faults`), None where the trace
    cannot show them. Episodes are numbered by their position here (the caller renumbers them
    over a whole trace)."""
    n = len(episodes)
    windows = Windows(episodes)
    records = _records(events, ledger, episodes, windows)
    folios = ledger.iloc[records["row"].to_numpy()].reset_index(drop=True)
    folios["episode"] = records["episode"].to_numpy()
    folios["outcome"] = categorical(records["outcome"].to_numpy())
    kind, kind_evidence = kinds.decide(folios, episodes)
    folios["kind"], folios["kind_evidence"] = categorical(kind), categorical(kind_evidence)
    folios = pd.concat(
        [folios, _unidentified_kept(folios, ledger, episodes, kinds)], ignore_index=True
    )
    folios = folios.sort_values(["episode", "folio"], kind="stable").reset_index(drop=True)
    folios["pmd_mapped"] = _pmd_mapped(folios, episodes, kinds.prior.unnamed_pmd_kept)
    starts_all = run_starts(
        write_faults if write_faults is not None else pd.DataFrame(),
        folios["folio"].to_numpy(),
        episodes["start_seq"].to_numpy()[folios["episode"].to_numpy()],
        folios["nr_pages"].to_numpy(),
    )
    steps, in_order, swap, flushes, small, lazy_single = _signatures(
        events, episodes, windows, rss, kinds.lazy_processes
    )
    kept_why = np.full(len(folios), "", dtype=object)
    how_all = np.full(len(folios), "unknown", dtype=object)
    batch_starts_all = np.full(len(folios), "", dtype=object)
    dirty_all = np.full(len(folios), CLEAN, dtype=np.int64)
    kind_code, kind_values = codes(folios["kind"])
    member = np.append(member_of_kind(kind_values), MISSING)[kind_code]
    # x86 write-protect faults name the runs of other write bits of anonymous folios
    # (batched_runs); where they are unseen (arm64, riscv; page-cache and shmem folios, which
    # have no address), a folio's batches may be as many as its pages
    runs_seen = (member == ANON) if write_faults is not None else np.zeros(len(folios), bool)
    # what the matching reads of each folio record, one row each (kept, member, pages, order,
    # swap-backed, lazyfree, in a MADV_FREE caller's mm, write runs)
    records = np.stack(
        [
            equals(folios["outcome"], "kept"),
            member,
            folios["nr_pages"].to_numpy(),
            folios["order"].to_numpy(),
            equals(folios["kind"], "swapbacked"),
            equals(folios["kind"], "lazyfree"),
            np.isin(folios["process"].to_numpy(), kinds.lazy_processes),
            pd.factorize(starts_all)[0],
        ],
        axis=1,
    ).astype(np.int64)
    kept_all = records[:, _KEPT].astype(bool)
    most_steps = int(records[:, _NR].max(initial=2))
    unmapped_by: dict[tuple, _EpisodeUnmaps] = {}
    signatures = []
    grouped = _grouped(folios["episode"].to_numpy(), n)
    owners = _owners(folios["pid"].to_numpy(), grouped)
    for episode, index in enumerate(grouped):
        # episodes alike (a memcg at its limit reclaims the same way again and again) are
        # matched once: the same records and the same steps, flushes and counts give the same
        # unmaps
        rows = records[index]
        key = (
            rows.tobytes(),
            *(tuple(sorted(c.items())) for c in steps[episode].values()),
            tuple(steps[episode]),
            *(a.tobytes() for a in in_order[episode].values()),
            tuple(in_order[episode]),
            tuple(sorted(flushes[episode].items())),
            int(swap[episode]),
            int(small[episode]),
            int(lazy_single[episode]),
        )
        found = unmapped_by.get(key)
        if found is None:
            found = unmapped_by[key] = _episode_unmaps(
                rows,
                starts_all[index],
                steps[episode],
                in_order[episode],
                flushes[episode],
                (int(swap[episode]), int(small[episode]), int(lazy_single[episode])),
                write_faults is not None,
                most_steps,
                contpte,
            )
        how_all[index] = found.how
        batch_starts_all[index] = found.batch_starts
        kept_why[index] = found.kept_why
        dirty_all[index] = found.dirty
        signatures.append(
            {"episode": episode, **_copied(found.signature), "owners": owners[episode]}
        )
    folios["captured_unmap"] = categorical(how_all)
    folios["evidence"] = _evidence(folios, kept_all, kept_why)
    end = folios["end_seq"].to_numpy()
    # a window whose closing event was lost ends at its bound; one open at the trace's end
    # holds every later end of its folios
    bounds = np.where(lost_end(episodes, events.n), episodes["last_seq"], episodes["end_seq"])
    ep_end = bounds[folios["episode"].to_numpy()]
    zapped = kept_all & (end >= 0) & ((ep_end < 0) | (end > ep_end))
    # a kept folio the trace does not name (nr_unmap_fail) may or may not be zapped later
    folios["zapped_later"] = pd.arrays.BooleanArray(
        zapped, kept_all & (folios["folio"].to_numpy() == MISSING)
    )
    folios["dirty_page"] = nullable(dirty_all, dirty_all != CLEAN)
    starts_all[~runs_seen] = None
    folios["write_run_starts"] = pd.Series(starts_all, index=folios.index, dtype="string")
    batch_starts_all[batch_starts_all == ""] = None
    folios["batch_starts"] = pd.Series(batch_starts_all, index=folios.index, dtype="string")
    return folios[FOLIO_COLUMNS], pd.DataFrame(signatures, columns=SIGNATURE_COLUMNS), small
