"""rss_stat steps: how many pages each event added to or removed from one mm's counter.

``rss_stat`` prints the new value of one counter (``MM_ANONPAGES``, ``MM_FILEPAGES``,
``MM_SWAPENTS``, ``MM_SHMEMPAGES``) of one mm in bytes, once per add_mm_counter() /
inc_mm_counter() / dec_mm_counter() call (include/trace/events/kmem.h, mm_trace_rss_stat()).
A step is the difference to the previous event of the same mm and counter, in pages: one
batched unmap of an N-page folio is one step of -N, a per-PTE unmap N steps of -1. The first
event of each (mm, counter) in the trace has no previous value: it is kept with ``first`` set
and ``pages`` 0 (an event whose size is unknown).
"""

from __future__ import annotations

from dataclasses import dataclass
from weakref import WeakKeyDictionary

import numpy as np
from folio_replay.replay.reconstruct.events import EventArrays
from folio_replay.replay.reconstruct.joins import next_in_group

__all__ = ["MEMBERS", "PAGE_SIZE", "RssSteps", "process_of", "rss_steps"]

PAGE_SIZE = 4096
MEMBERS = ("MM_FILEPAGES", "MM_ANONPAGES", "MM_SWAPENTS", "MM_SHMEMPAGES")


@dataclass
class RssSteps:
    """One entry per rss_stat row (seq order)."""

    seq: np.ndarray
    pid: np.ndarray  # the thread in whose context the counter changed
    mm_id: np.ndarray
    curr: np.ndarray  # 1: the thread's own mm
    member: np.ndarray  # index into MEMBERS (-1: another name)
    pages: np.ndarray  # signed step in pages (0 for a first event)
    first: np.ndarray  # the first event of its (mm, counter) in the trace: step unknown


def rss_steps(events: EventArrays) -> RssSteps:
    """The steps of every rss_stat row of the trace."""
    rows = events.rows("rss_stat")
    codes, names = events.codes("rss_stat.member", rows)
    member_of = np.array(
        [MEMBERS.index(n) if n in MEMBERS else -1 for n in names] or [-1], dtype=np.int64
    )
    member = member_of[codes] if len(rows) else np.empty(0, np.int64)
    mm_id = events.ints("rss_stat.mm_id", rows)
    size = events.ints("rss_stat.size", rows)
    key = mm_id * len(MEMBERS) + np.maximum(member, 0)
    order, following = next_in_group(key, rows)
    has_next = following >= 0
    pages = np.zeros(len(rows), dtype=np.int64)
    first = np.ones(len(rows), dtype=bool)
    previous, current = order[has_next], order[following[has_next]]
    pages[current] = (size[current] - size[previous]) // PAGE_SIZE
    first[current] = False
    return RssSteps(
        rows, events.pid[rows], mm_id, events.ints("rss_stat.curr", rows), member, pages, first
    )


class _OwnMmIndex:
    """Each thread's own rss_stat rows (``curr=1``: the counter of the thread's own mm) in
    (thread, seq) order, as one sorted int64 key (thread rank * span + seq), built once per
    trace and searched per query."""

    def __init__(self, events: EventArrays) -> None:
        rows = events.rows("rss_stat")
        own = rows[events.ints("rss_stat.curr", rows) == 1]
        thread = events.pid[own]
        self.threads, rank = np.unique(thread, return_inverse=True)
        self.span = events.n + 1
        order = np.lexsort((own, rank))
        self.keys = rank[order] * self.span + own[order]
        self.mm = events.ints("rss_stat.mm_id", own)[order]

    def nearest(self, pids: np.ndarray, seqs: np.ndarray) -> np.ndarray:
        """Per (thread, row): the mm of the thread's own row nearest at or after the row, else
        nearest before it; the minimum int64 where the thread has none."""
        found = np.full(len(pids), np.iinfo(np.int64).min, dtype=np.int64)
        rank = np.searchsorted(self.threads, pids)
        known = rank < len(self.threads)
        known[known] = self.threads[rank[known]] == pids[known]
        if not known.any():
            return found
        key = rank[known] * self.span + seqs[known]
        at = np.searchsorted(self.keys, key)  # first own row at or after
        before = at - 1
        low, high = rank[known] * self.span, (rank[known] + 1) * self.span
        after_ok = at < len(self.keys)
        after_ok[after_ok] = self.keys[at[after_ok]] < high[after_ok]
        before_ok = before >= 0
        before_ok[before_ok] = self.keys[before[before_ok]] >= low[before_ok]
        pick = np.where(after_ok, at, np.where(before_ok, before, -1))
        found[known] = np.where(pick >= 0, self.mm[np.maximum(pick, 0)], found[known])
        return found


_own_mm: WeakKeyDictionary[EventArrays, _OwnMmIndex] = WeakKeyDictionary()


def process_of(events: EventArrays, pids: np.ndarray, seqs: np.ndarray) -> np.ndarray:
    """A process key per (thread, row): the ``mm_id`` of the thread's own rss_stat event
    (``curr=1``) nearest after the row, else nearest before it (the mm changes at exec, and a
    fault's counter update follows its allocation), shared by the threads of one process;
    ``-pid`` for a thread without any."""
    index = _own_mm.get(events)
    if index is None:
        index = _own_mm[events] = _OwnMmIndex(events)
    found = index.nearest(pids.astype(np.int64), seqs.astype(np.int64))
    return np.where(found == np.iinfo(np.int64).min, -pids, found)
