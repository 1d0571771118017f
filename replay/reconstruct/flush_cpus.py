"""Where each reclaimed folio's mm was loaded when reclaim unmapped it, from x86 ``tlb_flush``.

x86 reclaim flushes a folio's unmapped PTEs right away when only the reclaiming CPU has the mm
loaded, and queues the flush in the tlbbatch when another CPU has it
(``arch_tlbbatch_should_defer()``: ``cpumask_any_but(mm_cpumask(mm), cpu)``; mm/rmap.c
``should_defer_flush()``); ``flush_tlb_mm_range()`` flushes nothing when no CPU has it loaded
(a sleeping process reached by ``process_madvise()``, arch/x86/mm/tlb.c). The trace shows which:
``flush_tlb_func()`` records ``TLB_LOCAL_MM_SHOOTDOWN`` for a flush of one mm on the reclaiming
CPU, ``TLB_REMOTE_SEND_IPI`` before the IPIs to other CPUs, and ``arch_tlbbatch_flush()``
``TLB_LOCAL_SHOOTDOWN`` (no mm) for the deferred batch; each comes right before the rss_stat
step of the unmap it flushes. Evidence: fixtures/host/remote/microbench-remote-cpu and
mt-cross-thread captures on 6.18.44 (both deferred and local folios in one episode: the other
thread sleeps and wakes).

Per episode, every unmap step of its thread (an rss_stat decrement of anon, file or shmem
pages) is classed by the flush events just before it; the episode's folios take the classes in
proportion to the pages of each (folios in the order of the episode). arm64 and riscv have no
``tlb_flush`` tracepoint: there the column is null.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from folio_replay.replay.reconstruct.episodes import Windows
from folio_replay.replay.reconstruct.events import EventArrays
from folio_replay.replay.reconstruct.joins import categorical
from folio_replay.replay.reconstruct.rss import MEMBERS, RssSteps

__all__ = ["MM_CPUS", "mm_cpus"]

# values of the folios' ``mm_cpus`` column: the reclaiming CPU only, other CPUs too (flush
# deferred to the tlbbatch, or sent by IPI), no CPU at all (nothing to flush)
LOCAL, REMOTE, NONE = MM_CPUS = ("local", "remote", "none")
UNKNOWN = len(MM_CPUS)  # a class of pages whose flushes the trace cannot place
# enum tlb_flush_reason (include/linux/mm_types.h; parsers/events.toml maps the numbers)
LOCAL_MM = "TLB_LOCAL_MM_SHOOTDOWN"
SEND_IPI = "TLB_REMOTE_SEND_IPI"
UNMAP_MEMBERS = [MEMBERS.index(m) for m in ("MM_ANONPAGES", "MM_FILEPAGES", "MM_SHMEMPAGES")]
STEP, OTHER_FLUSH, LOCAL_FLUSH, SEND_FLUSH = range(4)
# the most pages one reclaim list holds: MADV_PAGEOUT reclaims one list per PMD range
# (mm/madvise.c), LRU reclaim isolates SWAP_CLUSTER_MAX pages or one larger folio
# (isolate_lru_folios() counts pages, mm/vmscan.c)
LIST_PAGES = 512


def _step_classes(
    events: EventArrays, windows: Windows, rss: RssSteps, folio_pages: np.ndarray
) -> np.ndarray:
    """Pages per episode and class (:data:`MM_CPUS`, then :data:`UNKNOWN`): each unmap
    step's class from the reclaiming thread's flush events just before it; ``folio_pages``:
    the pages of each episode's folio records."""
    n = len(folio_pages)
    unmapping = np.isin(rss.member, UNMAP_MEMBERS) & (rss.pages < 0)
    steps, step_pages = rss.seq[unmapping], -rss.pages[unmapping]
    flushes = events.rows("tlb_flush")
    reasons, names = events.codes("tlb_flush.reason", flushes)
    kind_of = np.array(
        [{LOCAL_MM: LOCAL_FLUSH, SEND_IPI: SEND_FLUSH}.get(r, OTHER_FLUSH) for r in names]
        or [OTHER_FLUSH]
    )
    rows = np.concatenate([steps, flushes])
    kind = np.concatenate([np.full(len(steps), STEP), kind_of[reasons]])
    pages = np.concatenate([step_pages, events.ints("tlb_flush.pages", flushes)])
    where = windows.locate(events.pid[rows], rows)
    inside = where >= 0
    rows, kind, pages, where = rows[inside], kind[inside], pages[inside], where[inside]
    order = np.lexsort((rows, where))
    rows, kind, pages, where = rows[order], kind[order], pages[order], where[order]
    step = np.flatnonzero(kind == STEP)

    def before(k: int) -> tuple[np.ndarray, np.ndarray]:
        at = step - k
        ok = at >= 0
        ok[ok] = where[at[ok]] == where[step[ok]]
        found = np.where(ok, kind[np.maximum(at, 0)], STEP)
        return found, np.where(ok, pages[np.maximum(at, 0)], 0)

    (prev, prev_pages), (prev2, prev2_pages) = before(1), before(2)
    # flush_tlb_batched_pending() of the next walk after a deferred batch: an IPI and a local
    # flush of the whole mm before the first step of the next reclaim list
    pending = (
        (prev == LOCAL_FLUSH) & (prev2 == SEND_FLUSH) & (prev_pages == -1) & (prev2_pages == -1)
    )
    synchronous_remote = (prev == SEND_FLUSH) | (
        (prev == LOCAL_FLUSH) & (prev2 == SEND_FLUSH) & ~pending
    )
    flushed_here = (prev == LOCAL_FLUSH) & ~synchronous_remote & ~pending
    totals = np.zeros((n, len(MM_CPUS) + 1), dtype=np.int64)  # the last: not known
    np.add.at(
        totals[:, MM_CPUS.index(REMOTE)],
        where[step[synchronous_remote]],
        pages[step[synchronous_remote]],
    )
    np.add.at(totals[:, MM_CPUS.index(LOCAL)], where[step[flushed_here]], pages[step[flushed_here]])
    unflushed = ~synchronous_remote & ~flushed_here
    # a step without a flush was deferred (another CPU has the mm) or flushed nowhere (no CPU
    # has it). Each deferring reclaim list sends at least one IPI (its tlbbatch flush), and a
    # list holds at most LIST_PAGES: pages beyond the IPIs' lists flushed nowhere (a stale
    # mm_cpumask bit sends one IPI to a CPU that no longer has the mm: TLB_REMOTE_WRONG_CPU).
    silent = np.bincount(where[step[unflushed]], weights=pages[step[unflushed]], minlength=n)
    lists = np.bincount(where[kind == SEND_FLUSH], minlength=n) * LIST_PAGES
    remote = np.minimum(silent, lists).astype(np.int64)
    totals[:, MM_CPUS.index(REMOTE)] += remote
    totals[:, MM_CPUS.index(NONE)] += (silent - remote).astype(np.int64)
    # an episode without steps (every folio kept, no rss change): the pages its thread
    # flushed here were local, then the IPIs' lists deferred; the rest is not known (a kernel
    # that keeps a redirtied folio mapped flushes nothing whatever the CPUs: 7.x, PMD THPs)
    quiet = totals.sum(axis=1) == 0
    flushed = (kind == LOCAL_FLUSH) & (pages > 0)
    here = np.bincount(where[flushed], weights=pages[flushed], minlength=n).astype(np.int64)
    local = np.minimum(folio_pages, here)
    remote = np.minimum(folio_pages - local, lists)
    totals[quiet, MM_CPUS.index(LOCAL)] = local[quiet]
    totals[quiet, MM_CPUS.index(REMOTE)] = remote[quiet]
    totals[quiet, UNKNOWN] = (folio_pages - local - remote)[quiet]
    return totals


def mm_cpus(
    events: EventArrays,
    episodes: pd.DataFrame,
    rss: RssSteps,
    folios: pd.DataFrame,
) -> pd.Categorical:
    """Per folio record (``folios`` sorted by episode), where its mm was loaded when reclaim
    unmapped it: ``local``, ``remote`` or ``none`` (:data:`MM_CPUS`); null without x86
    ``tlb_flush`` events, and where the trace cannot tell (a kept folio's missing flush)."""
    values = np.full(len(folios), None, dtype=object)
    if not events.has("tlb_flush") or folios.empty:
        return categorical(values)
    n = len(episodes)
    episode = folios["episode"].to_numpy()
    nr = folios["nr_pages"].to_numpy().astype(np.float64)
    span = np.zeros(n)
    np.add.at(span, episode, nr)
    totals = _step_classes(events, Windows(episodes), rss, span.astype(np.int64))
    # each folio's page midpoint within its episode, as a share of the episode's folio pages
    cum = np.cumsum(nr)
    firsts = np.flatnonzero(np.r_[True, episode[1:] != episode[:-1]])
    before = np.zeros(len(folios))
    before[firsts] = cum[firsts] - nr[firsts]
    before = np.maximum.accumulate(before)
    mid = cum - nr / 2 - before
    share = mid / np.maximum(span[episode], 1)
    bounds = np.cumsum(totals, axis=1) / np.maximum(totals.sum(axis=1, keepdims=True), 1)
    cls = (share[:, None] >= bounds[episode]).sum(axis=1)
    values = np.asarray([*MM_CPUS, None], dtype=object)[np.minimum(cls, UNKNOWN)]
    return categorical(values)
