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

import numpy as np
from folio_replay.replay.reconstruct.events import EventArrays
from folio_replay.replay.reconstruct.joins import latest_before, next_in_group

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


def process_of(events: EventArrays, pids: np.ndarray, seqs: np.ndarray) -> np.ndarray:
    """A process key per (thread, row): the ``mm_id`` of the thread's own rss_stat event
    (``curr=1``) nearest after the row, else nearest before it (the mm changes at exec, and a
    fault's counter update follows its allocation), shared by the threads of one process;
    ``-pid`` for a thread without any."""
    rows = events.rows("rss_stat")
    own = rows[events.ints("rss_stat.curr", rows) == 1]
    mm = events.ints("rss_stat.mm_id", own)
    found = np.full(len(pids), np.iinfo(np.int64).min, dtype=np.int64)
    if len(own):
        thread = events.pid[own]
        after = latest_before(-thread, -own, -pids, -seqs + 1)  # nearest at or after, mirrored
        before = latest_before(thread, own, pids, seqs)
        pick = np.where(after >= 0, after, before)
        found = np.where(pick >= 0, mm[np.maximum(pick, 0)], found)
    return np.where(found == np.iinfo(np.int64).min, -pids, found)
