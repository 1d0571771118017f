"""The large-folio ledger: each large folio allocated in the trace, from allocation to free or
split, with the evidence of its kind.

Evidence used, per folio: the ``mm_page_alloc`` row (pfn, order: the folio size; user GFP
flags), in the faulting (or reading) process's context; the ``page_fault_user`` row just before
it on the same pid (x86 only: the user address; arm64 and riscv have no such tracepoint, so
their folios carry no address); the ``mm_page_free`` row of the same pfn and order (the folio
freed whole), or the first order-0 ``mm_page_free`` inside its pfn range (the folio was split
into small pages); ``mm_filemap_add_to_page_cache`` of the same pfn and order (a page-cache or
shmem folio); the first ``mm_lru_insertion`` of its pfn (its LRU flags: ``a`` anon / ``f``
file, ``b`` swap-backed).

Everything is computed with array joins on (pfn, order) keys in time order, never row by row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from folio_replay.replay.reconstruct.events import MISSING, EventArrays
from folio_replay.replay.reconstruct.joins import latest_before, nullable
from folio_replay.replay.reconstruct.prior import Prior
from folio_replay.replay.reconstruct.rss import process_of

__all__ = [
    "LEDGER_COLUMNS",
    "USER_GFP_MARKERS",
    "alive_mask",
    "build_ledger",
    "first_in_life",
    "gfp_flags_with",
    "retire_split",
]

# User folio allocations: anonymous faults use GFP_HIGHUSER_MOVABLE (small pages) and
# GFP_TRANSHUGE{,_LIGHT} (mTHP and PMD THP, vma_thp_gfp_mask() in mm/huge_memory.c); the page
# cache allocates with the mapping's gfp (GFP_HIGHUSER_MOVABLE for regular files).
USER_GFP_MARKERS = ("HIGHUSER_MOVABLE", "TRANSHUGE")
MAX_ORDER_KEY = 64  # keys are pfn * 64 + order

LEDGER_COLUMNS = [
    "folio",
    "pid",
    "process",
    "comm",
    "pfn",
    "order",
    "nr_pages",
    "size_kb",
    "address",
    "alloc_ns",
    "alloc_line",
    "alloc_seq",
    "end_ns",
    "end_line",
    "end_seq",
    "end",
    "end_pid",
    "file_seq",
    "lru_flags",
    "fault_seq",
    "lru_seq",
    "evidence",
]


def gfp_flags_with(events: EventArrays, rows: np.ndarray, markers: tuple[str, ...]) -> np.ndarray:
    """Whether the ``gfp_flags`` of each ``mm_page_alloc`` row hold any of ``markers`` (tested
    once per distinct flags string)."""
    codes, values = events.codes("page.gfp_flags", rows)
    if not len(values):
        return np.zeros(len(rows), dtype=bool)
    return np.array([any(m in v for m in markers) for v in values], dtype=bool)[codes]


def _large_allocs(events: EventArrays) -> tuple[np.ndarray, np.ndarray]:
    """mm_page_alloc rows of order > 0, and whether each has user GFP flags."""
    rows = events.rows("mm_page_alloc")
    rows = rows[events.ints("page.order", rows) > 0]
    return rows, gfp_flags_with(events, rows, USER_GFP_MARKERS)


def _addresses(events: EventArrays, allocs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The user address of each alloc and the row of the fault that gave it: the pid's
    page_fault_user just before it, when no other alloc of the pid came between (each fault
    gives at most one folio); MISSING elsewhere."""
    faults = events.rows("page_fault_user")
    address = np.full(len(allocs), MISSING, dtype=np.int64)
    fault_seq = np.full(len(allocs), MISSING, dtype=np.int64)
    if not len(faults):
        return address, fault_seq
    rows = np.concatenate([faults, allocs])
    pids = events.pid[rows]
    order = np.lexsort((rows, pids))
    prev_is_fault = np.zeros(len(order), dtype=bool)
    prev_is_fault[1:] = (order[:-1] < len(faults)) & (pids[order[1:]] == pids[order[:-1]])
    is_alloc = order >= len(faults)
    hit = is_alloc & prev_is_fault
    fault_address = events.ints("fault.address", faults)
    given = order[np.flatnonzero(hit) - 1]
    address[order[hit] - len(faults)] = fault_address[given]
    fault_seq[order[hit] - len(faults)] = faults[given]
    return address, fault_seq


def build_ledger(events: EventArrays, prior: Prior | None = None) -> pd.DataFrame:
    """One row per large user folio allocated in the trace (``folio`` numbers them in
    allocation order).

    ``end`` is ``freed`` (freed whole at ``end_seq``), ``split`` (an order-0 page of it freed
    first) or ``alive`` (still allocated when the trace ends); ``end_pid`` is the thread that
    freed it; ``process`` keys the process the faulting thread belongs to
    (:func:`.rss.process_of`). ``file_seq`` is the row of its page-cache insertion (MISSING
    for anon folios), ``lru_flags`` the flags of its first LRU insertion ("" without one),
    ``fault_seq`` and ``lru_seq`` the rows of the fault that gave its address and of that
    insertion. Folios carried from an earlier segment keep their number (``prior``).
    """
    allocs, user = _large_allocs(events)
    order = events.ints("page.order", allocs)
    pfn = events.ints("page.pfn", allocs)
    key = pfn * MAX_ORDER_KEY + order
    end_seq, end_kind = _ends(events, key, allocs, order)
    file_seq = _first_during(
        events, key, allocs, end_seq, "mm_filemap_add_to_page_cache", "filemap.pfn", "filemap.order"
    )
    # user folios: anonymous (user GFP flags) or page cache (whatever gfp its mapping has)
    keep = user | (file_seq >= 0)
    allocs, order, pfn, key = allocs[keep], order[keep], pfn[keep], key[keep]
    end_seq, end_kind, file_seq = end_seq[keep], end_kind[keep], file_seq[keep]
    n = len(allocs)
    lru = events.rows("mm_lru_insertion")
    lru_pfn = events.ints("lru_insertion.pfn", lru)
    first_lru = np.full(n, MISSING, dtype=np.int64)
    for folio_order in np.unique(order):
        owner = latest_before(key, allocs, lru_pfn * MAX_ORDER_KEY + folio_order, lru)
        first_in_life(first_lru, owner, lru, end_seq)
    flag_codes, flag_values = events.codes("lru_insertion.flags", lru)
    flags = np.asarray(flag_values, dtype=object)[flag_codes]
    lru_flags = np.full(n, "", dtype=object)
    seen = first_lru >= 0
    lru_flags[seen] = flags[np.searchsorted(lru, first_lru[seen])]

    # a page-cache folio is read in around the faulting address (readahead) and may be mapped
    # at several: the fault address says nothing about it
    address, fault_seq = _addresses(events, allocs)
    address = np.where(file_seq >= 0, MISSING, address)
    ended = end_seq >= 0
    end_rows = np.maximum(end_seq, 0)
    evidence = _evidence(address >= 0, end_kind)
    return pd.DataFrame(
        {
            "folio": _numbers(events.line[allocs], prior),
            "pid": events.pid[allocs],
            "process": process_of(events, events.pid[allocs], allocs),
            "comm": events.comm(allocs),
            "pfn": pfn,
            "order": order,
            "nr_pages": 1 << order,
            "size_kb": 4 << order,
            "address": nullable(address - address % (4096 << order), address >= 0),
            "alloc_ns": events.ts[allocs],
            "alloc_line": events.line[allocs],
            "alloc_seq": allocs,
            "end_ns": nullable(events.ts[end_rows], ended),
            "end_line": nullable(events.line[end_rows], ended),
            "end_seq": end_seq,
            "end": pd.Categorical.from_codes(end_kind, ["alive", "freed", "split"]),
            "end_pid": np.where(ended, events.pid[end_rows], MISSING),
            "file_seq": file_seq,
            "lru_flags": pd.Categorical(lru_flags),
            "fault_seq": fault_seq,
            "lru_seq": first_lru,
            "evidence": evidence,
        },
        columns=LEDGER_COLUMNS,
    )


# the evidence of a folio: its allocation (after a fault that gave its address, or not) and its
# end (none, freed whole, split), numbered by (has address) * 3 + end kind
_ALLOC_EVIDENCE = ("mm_page_alloc", "mm_page_alloc after page_fault_user")
_END_EVIDENCE = ("", "; mm_page_free of the folio", "; order-0 mm_page_free inside it")
_EVIDENCE = [alloc + end for alloc in _ALLOC_EVIDENCE for end in _END_EVIDENCE]
_EVIDENCE_SORTED = sorted(_EVIDENCE)  # a categorical's categories are sorted
_EVIDENCE_RANK = np.array([_EVIDENCE_SORTED.index(text) for text in _EVIDENCE], np.int8)


def _evidence(addressed: np.ndarray, end_kind: np.ndarray) -> pd.Categorical:
    """Each folio's evidence text, as a categorical of the texts that occur (sorted)."""
    codes = addressed.astype(np.int8) * len(_END_EVIDENCE) + end_kind
    return pd.Categorical.from_codes(
        _EVIDENCE_RANK[codes], categories=_EVIDENCE_SORTED
    ).remove_unused_categories()


def _numbers(alloc_lines: np.ndarray, prior: Prior | None) -> np.ndarray:
    """Folio numbers in allocation order over the whole trace: a carried folio keeps its
    number, a new one takes the next."""
    if prior is None or not prior.folio_ids:
        return (prior.folios if prior else 0) + np.arange(len(alloc_lines), dtype=np.int64)
    known = np.array(
        [prior.folio_ids.get(line, -1) for line in alloc_lines.tolist()], dtype=np.int64
    )
    new = known < 0
    known[new] = prior.folios + np.arange(int(new.sum()))
    return known


def _ends(
    events: EventArrays, key: np.ndarray, allocs: np.ndarray, order: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each folio's end row and kind (0 alive, 1 freed whole, 2 split: an order-0 page of
    its range freed first)."""
    end_seq = np.full(len(allocs), MISSING, dtype=np.int64)
    end_kind = np.zeros(len(allocs), dtype=np.int8)
    frees = events.rows("mm_page_free", "mm_page_free_batched")
    free_order = events.ints("page.order", frees)
    free_pfn = events.ints("page.pfn", frees)
    # whole frees: the latest alloc of the same (pfn, order) before the free
    whole = free_order > 0
    owner = latest_before(
        key, allocs, free_pfn[whole] * MAX_ORDER_KEY + free_order[whole], frees[whole]
    )
    _end(end_seq, end_kind, owner, frees[whole], 1)
    # splits: an order-0 free inside the range of an alive folio of any order
    small = ~whole
    for folio_order in np.unique(order):
        base = free_pfn[small] - free_pfn[small] % (1 << int(folio_order))
        owner = latest_before(key, allocs, base * MAX_ORDER_KEY + folio_order, frees[small])
        _end(end_seq, end_kind, owner, frees[small], 2)
    return end_seq, end_kind


def _end(
    end_seq: np.ndarray, end_kind: np.ndarray, owner: np.ndarray, rows: np.ndarray, kind: int
) -> None:
    """End each owning folio at its first matching row, unless it already ended before."""
    hit = owner >= 0
    owner, rows = owner[hit], rows[hit]
    first = np.full(len(end_seq), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, owner, rows)
    touched = first < np.iinfo(np.int64).max
    earlier = touched & ((end_seq < 0) | (first < end_seq))
    end_seq[earlier] = first[earlier]
    end_kind[earlier] = kind


def first_in_life(
    first: np.ndarray, owner: np.ndarray, rows: np.ndarray, end_seq: np.ndarray
) -> None:
    """Record in ``first`` (MISSING: none yet), per owning folio (``owner``: its index, -1 for
    none; ``end_seq``: each folio's end row, -1 alive), the first of ``rows`` within its life."""
    hit = owner >= 0
    owner, rows = owner[hit], rows[hit]
    alive = (end_seq[owner] < 0) | (rows <= end_seq[owner])
    owner, rows = owner[alive], rows[alive]
    best = np.full(len(first), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, owner, rows)
    update = (best < np.iinfo(np.int64).max) & ((first < 0) | (best < first))
    first[update] = best[update]


def _first_during(
    events: EventArrays,
    key: np.ndarray,
    allocs: np.ndarray,
    end_seq: np.ndarray,
    event: str,
    pfn_column: str,
    order_column: str,
) -> np.ndarray:
    """Per folio, the first row of ``event`` with its (pfn, order) within its life."""
    rows = events.rows(event)
    first = np.full(len(allocs), MISSING, dtype=np.int64)
    if len(rows):
        keys = events.ints(pfn_column, rows) * MAX_ORDER_KEY + events.ints(order_column, rows)
        first_in_life(first, latest_before(key, allocs, keys, rows), rows, end_seq)
    return first


def retire_split(
    ledger: pd.DataFrame, events: EventArrays, split_at: dict[int, int]
) -> pd.DataFrame:
    """The ledger with the folios a madvise range split (``split_at``: allocation line ->
    row of the call, :func:`.partial.partial_unmaps`) ended there as ``split``: its pieces
    are order-0 pages from then on, whose put-backs, swap writes and frees are not the
    folio's (MADV_FREE, MADV_COLD and MADV_PAGEOUT split_folio() a large folio their range
    cuts, mm/madvise.c)."""
    if not split_at:
        return ledger
    at = pd.Series(split_at).reindex(ledger["alloc_line"].to_numpy()).to_numpy()
    end = ledger["end_seq"].to_numpy()
    hit = ~np.isnan(at)
    seq = np.where(hit, at, 0).astype(np.int64)
    hit &= (end < 0) | (end > seq)
    if not hit.any():
        return ledger
    ledger = ledger.copy()
    rows = seq[hit]
    ledger.loc[hit, "end_seq"] = rows
    ledger.loc[hit, "end_pid"] = events.pid[rows]
    for column, values in (("end_ns", events.ts[rows]), ("end_line", events.line[rows])):
        array = ledger[column].array.copy()
        array[hit] = values
        ledger[column] = array
    ledger["end"] = ledger["end"].astype(object).where(~hit, "split").astype(ledger["end"].dtype)
    evidence = ledger["evidence"].to_numpy(dtype=object).copy()
    evidence[hit] = [f"{text}; split by a madvise range cutting it" for text in evidence[hit]]
    ledger["evidence"] = pd.Categorical(evidence)
    return ledger


def alive_mask(ledger: pd.DataFrame, seq: int) -> np.ndarray:
    """Folios allocated before row ``seq`` and not freed or split before it."""
    end = ledger["end_seq"].to_numpy()
    return (ledger["alloc_seq"].to_numpy() < seq) & ((end < 0) | (end >= seq))
