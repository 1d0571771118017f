"""Which calls hold which folios: a madvise or munmap range and the large folios of the
caller's process alive at the call.

A folio with a user address (x86 ``page_fault_user``) is held by the ranges that contain it,
found by joining each call's range to its process's folios sorted by address. A folio without
one (arm64 and riscv have no fault addresses) is held by every call of its process in its life;
those pairs stay implicit, counted and searched per process with sorted searches, never
listed: a process that makes many calls over many live folios costs the calls plus the folios,
not their product.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from folio_replay.replay.reconstruct.joins import latest_before

__all__ = ["Coverage", "live_counts", "overlapping"]

NEVER = np.iinfo(np.int64).max  # the end of a folio still allocated
CHUNK_PAIRS = 1 << 22  # candidate (folio, call) pairs listed at a time, before filtering


def _lives(ledger: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each folio's allocation row and end row (:data:`NEVER` while allocated)."""
    end = ledger["end_seq"].to_numpy()
    return ledger["alloc_seq"].to_numpy(), np.where(end < 0, NEVER, end)


def _by_process(
    folio_process: np.ndarray, call_process: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per process with folios and calls: its folio rows and its call rows (ascending)."""
    calls = pd.Series(np.arange(len(call_process))).groupby(call_process).indices
    for process, folios in (
        pd.Series(np.arange(len(folio_process))).groupby(folio_process).indices.items()
    ):
        theirs = calls.get(process)
        if theirs is not None:
            yield folios, theirs


def live_counts(ledger: pd.DataFrame, calls: pd.DataFrame, folios: np.ndarray) -> np.ndarray:
    """Per call, how many of the ledger rows ``folios`` (a boolean mask) of the caller's
    process were alive at the call (allocated before it, not ended before it)."""
    alloc, end = _lives(ledger)
    seq = calls["enter_seq"].to_numpy()
    counts = np.zeros(len(calls), dtype=np.int64)
    process = ledger["process"].to_numpy(np.int64)
    for mine, theirs in _by_process(process[folios], calls["process"].to_numpy(np.int64)):
        rows = np.flatnonzero(folios)[mine]
        at = seq[theirs]
        # alive at t: alloc < t < end, and end <= t implies alloc < t
        counts[theirs] = np.searchsorted(np.sort(alloc[rows]), at, "left") - np.searchsorted(
            np.sort(end[rows]), at, "right"
        )
    return counts


def _pairs(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, j) with lo[i] <= j < hi[i]."""
    count = np.maximum(hi - lo, 0)
    first = np.repeat(np.arange(len(lo)), count)
    offsets = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    return first, np.repeat(lo, count) + offsets


def _chunks(lo: np.ndarray, hi: np.ndarray) -> Iterator[tuple[int, int]]:
    """Slices [a, b) of the rows whose pairs (hi - lo each) add up to at most
    :data:`CHUNK_PAIRS` (a row with more, alone): candidates are listed a chunk at a time."""
    total = np.cumsum(np.maximum(hi - lo, 0))
    a = 0
    while a < len(lo):
        before = int(total[a - 1]) if a else 0
        b = max(a + 1, int(np.searchsorted(total, before + CHUNK_PAIRS, "right")))
        yield a, b
        a = b


def _address_join(
    ledger: pd.DataFrame, calls: pd.DataFrame, slack: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(folio row, call row) pairs of the same process, the folio addressed and alive at the
    call, its address in [range start - (largest folio size if ``slack``), range end).

    Per process, the candidates are listed from the cheaper side: by address (each call's
    range over the folios sorted by address, then kept if alive: many addresses reused over
    time make this side long) or by time (each folio's calls in its life, then kept if in the
    range: many calls over many live folios make this side long); both give the same pairs."""
    address = ledger["address"].to_numpy(dtype=np.float64, na_value=np.nan)
    alloc, end = _lives(ledger)
    size = ledger["size_kb"].to_numpy() * 1024
    start = calls["range_start"].to_numpy()
    limit = start + calls["range_len"].to_numpy()
    seq = calls["enter_seq"].to_numpy()
    addressed = ~np.isnan(address)
    process = ledger["process"].to_numpy(np.int64)
    folio_rows, call_rows = [], []
    for mine, theirs in _by_process(process[addressed], calls["process"].to_numpy(np.int64)):
        rows = np.flatnonzero(addressed)[mine]
        rows = rows[np.argsort(address[rows], kind="stable")]
        sorted_address = address[rows]
        reach = float(size[rows].max()) if slack else 0.0
        lowest = start[theirs] - reach
        lo = np.searchsorted(sorted_address, lowest, "right" if slack else "left")
        hi = np.searchsorted(sorted_address, limit[theirs], "left")
        by_time = theirs[np.argsort(seq[theirs], kind="stable")]
        first = np.searchsorted(seq[by_time], alloc[rows], "right")
        last = np.searchsorted(seq[by_time], end[rows], "left")
        by_address = np.maximum(hi - lo, 0).sum() <= np.maximum(last - first, 0).sum()
        for a, b in _chunks(lo, hi) if by_address else _chunks(first, last):
            if by_address:
                call_at, folio_at = _pairs(lo[a:b], hi[a:b])
                folio, call = rows[folio_at], theirs[call_at + a]
                keep = (alloc[folio] < seq[call]) & (seq[call] < end[folio])
            else:
                folio_at, call_at = _pairs(first[a:b], last[a:b])
                folio, call = rows[folio_at + a], by_time[call_at]
                at = address[folio]
                keep = (at > start[call] - reach if slack else at >= start[call]) & (
                    at < limit[call]
                )
            folio_rows.append(folio[keep])
            call_rows.append(call[keep])
    if not folio_rows:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(folio_rows), np.concatenate(call_rows)


def overlapping(ledger: pd.DataFrame, calls: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(folio row, call row) pairs: an addressed folio alive at a call of its process whose
    range overlaps it (held whole or in part)."""
    folio, call = _address_join(ledger, calls, slack=True)
    first = ledger["address"].to_numpy(dtype=np.float64, na_value=np.nan)[folio]
    last = first + ledger["size_kb"].to_numpy()[folio] * 1024
    start = calls["range_start"].to_numpy()[call].astype(np.float64)
    end = start + calls["range_len"].to_numpy()[call]
    hit = (first < end) & (last > start)
    return folio[hit], call[hit]


class Coverage:
    """The calls (``calls``: madvise or munmap calls with their ranges, in seq order as
    :func:`.syscalls.syscall_calls` gives them) that hold each ledger folio: listed for
    addressed folios (``folio_idx``, ``call_idx``: the range contains the folio), implicit for
    the others (every call of the process in the folio's life)."""

    def __init__(self, ledger: pd.DataFrame, calls: pd.DataFrame) -> None:
        self.ledger, self.calls = ledger, calls
        self.blind = ledger["address"].isna().to_numpy() if len(ledger) else np.zeros(0, bool)
        self.alloc, self.end = _lives(ledger)
        self.seq = calls["enter_seq"].to_numpy() if len(calls) else np.empty(0, np.int64)
        if calls.empty or ledger.empty:
            self.folio_idx = self.call_idx = np.empty(0, np.int64)
        else:
            folio, call = _address_join(ledger, calls, slack=False)
            address = ledger["address"].to_numpy(dtype=np.float64, na_value=np.nan)[folio]
            size = ledger["size_kb"].to_numpy()[folio] * 1024
            start = calls["range_start"].to_numpy()[call]
            inside = address + size <= start + calls["range_len"].to_numpy()[call]
            self.folio_idx, self.call_idx = folio[inside], call[inside]

    def _blind_calls(
        self, rows: np.ndarray, before: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For the blind ledger ``rows``: the calls of their processes in seq order (one run
        per process, concatenated) and each row's [lo, hi) there: its calls in its life (and
        before ``before``, when given)."""
        order = np.empty(0, np.int64)
        lo = np.zeros(len(rows), np.int64)
        hi = np.zeros(len(rows), np.int64)
        if not len(rows) or self.calls.empty:
            return order, lo, hi
        bound = self.end[rows] if before is None else np.minimum(self.end[rows], before)
        process = self.ledger["process"].to_numpy(np.int64)[rows]
        parts, base = [], 0
        for mine, theirs in _by_process(process, self.calls["process"].to_numpy(np.int64)):
            theirs = theirs[np.argsort(self.seq[theirs], kind="stable")]
            seqs = self.seq[theirs]
            lo[mine] = base + np.searchsorted(seqs, self.alloc[rows[mine]], "right")
            hi[mine] = base + np.searchsorted(seqs, bound[mine], "left")
            parts.append(theirs)
            base += len(theirs)
        return (np.concatenate(parts) if parts else order), lo, hi

    def call_counts(self) -> np.ndarray:
        """Per call, the folios it holds."""
        counts = np.bincount(self.call_idx, minlength=len(self.calls)).astype(np.int64)
        if self.blind.any():
            counts += live_counts(self.ledger, self.calls, self.blind)
        return counts

    def call_sizes(self) -> pd.Series:
        """Folios held per (call, folio size in KiB), the pairs that occur, sorted."""
        sizes = self.ledger["size_kb"].to_numpy()
        parts = [
            pd.DataFrame({"call": self.call_idx, "size": sizes[self.folio_idx]}).value_counts()
        ]
        for size in np.unique(sizes[self.blind]).tolist():
            count = live_counts(self.ledger, self.calls, self.blind & (sizes == size))
            held = np.flatnonzero(count)
            index = pd.MultiIndex.from_arrays(
                [held, np.full(len(held), size, dtype=sizes.dtype)], names=["call", "size"]
            )
            parts.append(pd.Series(count[held], index=index, name="count"))
        together = pd.concat(parts)
        return together.groupby(level=[0, 1]).sum().sort_index()

    def all_addressed(self) -> np.ndarray:
        """Per call, whether every folio it holds has an address (true for a call holding
        none)."""
        if not self.blind.any():
            return np.ones(len(self.calls), dtype=bool)
        return live_counts(self.ledger, self.calls, self.blind) == 0

    def first_seq(self) -> np.ndarray:
        """Per ledger folio, the seq of the first call that holds it (:data:`NEVER`: none)."""
        first = np.full(len(self.ledger), NEVER, dtype=np.int64)
        np.minimum.at(first, self.folio_idx, self.seq[self.call_idx])
        rows = np.flatnonzero(self.blind)
        order, lo, hi = self._blind_calls(rows)
        held = hi > lo
        first[rows[held]] = self.seq[order[lo[held]]]
        return first

    def last_call(self, rows: np.ndarray) -> np.ndarray:
        """For the ledger ``rows``, the latest call that holds each (-1: none)."""
        last = np.full(len(self.ledger), -1, dtype=np.int64)
        np.maximum.at(last, self.folio_idx, self.call_idx)
        blind = rows[self.blind[rows]]
        order, lo, hi = self._blind_calls(blind)
        held = hi > lo
        last[blind[held]] = order[hi[held] - 1]
        return last[rows]

    def latest_seq_before(self, rows: np.ndarray, before: np.ndarray) -> np.ndarray:
        """For the ledger ``rows`` (-1: a folio not in the ledger), the seq of the latest call
        that holds each strictly before ``before`` (-1: none)."""
        pair_seq = self.seq[self.call_idx]
        pick = latest_before(self.folio_idx, pair_seq, rows, before)
        found = np.full(len(rows), -1, dtype=np.int64)
        found[pick >= 0] = pair_seq[pick[pick >= 0]]
        known = rows >= 0
        blind = np.flatnonzero(known)[self.blind[rows[known]]]
        order, lo, hi = self._blind_calls(rows[blind], before[blind])
        held = hi > lo
        found[blind[held]] = np.maximum(found[blind[held]], self.seq[order[hi[held] - 1]])
        return found
