"""Reconstruct a trace of any length a segment at a time, in bounded memory.

The event stream is cut where no reclaim window and no syscall the reconstruction pairs is
open (:func:`quiet_cut`); each segment is reconstructed with the same code as a whole trace
(:func:`folio_replay.replay.reconstruct.reconstruct`), after the rows of earlier segments that
still matter (:func:`carried_rows`): for every folio still allocated, its allocation (and the
fault that gave its address), its page-cache insertion, its first LRU insertion, the latest
MADV_FREE that covered it and the write-protect faults inside it; the last rss_stat of every
counter of every mm, and each thread's own latest rss_stat (its process). What those rows
cannot say is carried as facts (:class:`~.prior.Prior`). Results keep the trace's own line
numbers; folios and episodes are numbered over the whole trace.

How a folio's life ended (the evidence every record of it opens with) and whether a kept folio
is zapped later are only known once it ends: a segment's records of folios still allocated are
``pending``; a later segment that sees their folio end, or the end of the trace, settles them
(``settled``), so that predictions priced on them are priced once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from folio_replay.replay.reconstruct import Reconstruction, reconstruct
from folio_replay.replay.reconstruct.episodes import BOUNDARY_EVENTS
from folio_replay.replay.reconstruct.events import MISSING, EventArrays
from folio_replay.replay.reconstruct.ledger import USER_GFP_MARKERS, gfp_flags_with
from folio_replay.replay.reconstruct.partial import live_pfns, munmap_edges
from folio_replay.replay.reconstruct.prior import Prior
from folio_replay.replay.reconstruct.syscalls import syscall_rows

__all__ = ["Segment", "Segmenter", "carried_rows", "quiet_cut", "segments"]

# syscalls the reconstruction pairs into calls (episodes, MADV_FREE, partial unmaps, writes)
PAIRED_SYSCALLS = ("madvise", "process_madvise", "munmap", "write")
RECENT_ROWS = 4096
# calls a thread may block in (a write to a full pipe, a munmap waiting for mmap_lock) that
# open no reclaim episode of their own (a write holding memcg reclaim is not silent)
BLOCKING_CALLS = ("sys_enter_write", "sys_enter_munmap")
WINDOW_PAIRS = (
    *BOUNDARY_EVENTS.values(),
    *((f"sys_enter_{name}", f"sys_exit_{name}") for name in PAIRED_SYSCALLS),
)


def _open(events: EventArrays, begin: str, end: str) -> np.ndarray:
    """The ``begin`` rows whose window is still open: their thread has no ``end`` row after
    them, nor a per-syscall event (which ends a window whose end was lost:
    :mod:`~.episodes`)."""
    begins = events.rows(begin)
    closers = np.concatenate([events.rows(end), syscall_rows(events)])
    if not len(closers) or not len(begins):
        return begins
    # each thread's last closer, looked up by the beginning thread (a syscall enter is a
    # closer of its own: it is open while it is its thread's last)
    pids, at = np.unique(events.pid[closers], return_inverse=True)
    last = np.full(len(pids), -1, dtype=np.int64)
    np.maximum.at(last, at, closers)
    where = np.minimum(np.searchsorted(pids, events.pid[begins]), len(pids) - 1)
    known = pids[where] == events.pid[begins]
    return begins[begins >= np.where(known, last[where], -1)]


def _silent(events: EventArrays, enters: np.ndarray, stale_rows: int) -> np.ndarray:
    """Of the open syscall ``enters``, those at least ``stale_rows`` rows back whose thread has
    written no row since: a thread blocked in the call (a write to a full pipe, say), nothing
    of which the reconstruction can need but the enter row itself."""
    old = enters[enters <= events.n - stale_rows]
    if not len(old):
        return old
    last = pd.Series(np.arange(events.n)).groupby(events.pid).max()
    return old[last.reindex(events.pid[old]).to_numpy() == old]


def quiet_cut(events: EventArrays, stale_rows: int | None = None) -> int:
    """The first row of the stretch at the end of the table in which some window or call is
    still open (the table's length when none is). With ``stale_rows``, a syscall whose thread
    has been silent in it for that many rows does not hold the cut: its enter row is carried
    on (:func:`carried_rows`) until the call ends, so that a blocked thread cannot keep the
    rest of the trace in memory."""
    cut = events.n
    for begin, end in WINDOW_PAIRS:
        open_rows = _open(events, begin, end)
        if stale_rows is not None and begin in BLOCKING_CALLS and len(open_rows):
            open_rows = np.setdiff1d(open_rows, _silent(events, open_rows, stale_rows))
        if len(open_rows):
            cut = min(cut, int(open_rows.min()))
    return cut


def open_calls(events: EventArrays) -> np.ndarray:
    """The enter rows of the paired syscalls still open at the end of the table (worked out
    once per table)."""
    found = events.derived.get(("open_calls",))
    if found is None:
        found = events.derived[("open_calls",)] = np.concatenate(
            [_open(events, f"sys_enter_{name}", f"sys_exit_{name}") for name in PAIRED_SYSCALLS]
        ).astype(np.int64)
    return found  # type: ignore[return-value]


def _alive(ledger: pd.DataFrame) -> pd.DataFrame:
    """The ledger's folios still allocated at the end of its segment."""
    return ledger[ledger["end"] == "alive"]


def carried_rows(recon: Reconstruction) -> np.ndarray:
    """The rows of a reconstructed segment that the next one needs (see the module docs)."""
    events, ledger = recon.events, recon.ledger
    alive = _alive(ledger)
    keep = [
        alive[column].to_numpy() for column in ("alloc_seq", "file_seq", "fault_seq", "lru_seq")
    ]
    # large allocations without user GFP flags at the very end: a page-cache folio whose
    # mm_filemap_add_to_page_cache comes in the next segment (readahead adds each folio right
    # after allocating it)
    allocs = events.rows("mm_page_alloc")
    allocs = allocs[(allocs >= events.n - RECENT_ROWS) & (events.ints("page.order", allocs) > 0)]
    keep.append(allocs[~gfp_flags_with(events, allocs, USER_GFP_MARKERS)])
    # a thread's last fault with no allocation after it gives the next segment's first folio
    # of that thread its address
    faults = events.rows("page_fault_user")
    if len(faults):
        last_fault = pd.Series(faults).groupby(events.pid[faults]).max()
        last_alloc = ledger.groupby("pid")["alloc_seq"].max()
        waiting = last_fault[last_fault > last_alloc.reindex(last_fault.index).fillna(-1)]
        keep.append(waiting.to_numpy())
    # the write-protect faults inside folios still allocated (their write runs)
    faults = recon.write_faults
    if faults is not None:
        keep.append(faults["seq"].to_numpy()[faults["folio"].isin(alive["folio"]).to_numpy()])
    calls = recon.freed.calls
    latest = recon.freed.last_call(np.flatnonzero((ledger["end"] == "alive").to_numpy()))
    latest = np.unique(latest[latest >= 0])
    keep += [calls["enter_seq"].to_numpy()[latest], calls["exit_seq"].to_numpy()[latest]]
    rss = events.rows("rss_stat")
    counters = pd.DataFrame(
        {
            "mm": events.ints("rss_stat.mm_id", rss),
            "member": events.codes("rss_stat.member", rss)[0],
            "seq": rss,
        }
    )
    keep.append(counters.groupby(["mm", "member"])["seq"].max().to_numpy())
    own = rss[events.ints("rss_stat.curr", rss) == 1]
    keep.append(pd.Series(own).groupby(events.pid[own]).max().to_numpy())
    # calls still open (their thread blocked in them: quiet_cut()), ended in a later segment
    keep.append(open_calls(events))
    rows = np.unique(np.concatenate([np.asarray(k, dtype=np.int64) for k in keep]))
    return rows[rows >= 0]


def next_prior(prior: Prior, recon: Reconstruction, carried: int) -> Prior:
    """What the next segment needs to know beyond its ``carried`` rows."""
    ledger = recon.ledger
    alive = _alive(ledger)
    lines = alive["alloc_line"].to_numpy()
    # kept (redirtied) since the latest MADV_FREE that covered it
    folios = recon.folios
    kept = folios[folios["outcome"] == "kept"]
    start = recon.episodes.set_index("episode")["start_seq"]
    kept_at = pd.Series(start.loc[kept["episode"]].to_numpy(), index=kept["folio"].to_numpy())
    kept_at = kept_at.groupby(level=0).max()
    calls = recon.freed.calls
    alive_rows = np.flatnonzero((ledger["end"] == "alive").to_numpy())
    latest = recon.freed.last_call(alive_rows)
    freed_seq = np.full(len(latest), -1, dtype=np.int64)
    freed_seq[latest >= 0] = calls["enter_seq"].to_numpy()[latest[latest >= 0]]
    earlier = np.isin(lines, np.fromiter(prior.kept, np.int64))
    kept_seq = kept_at.reindex(alive["folio"]).fillna(-1).to_numpy()
    kept_seq = np.where(earlier & (kept_seq < 0), prior.carried - 1, kept_seq)
    unnamed_pmd = bool(((folios["folio"] == MISSING) & (folios["order"] == 9)).any())
    return Prior(
        carried=carried,
        kept={int(line) for line, k, f in zip(lines, kept_seq, freed_seq) if k > f},
        cut=(prior.cut | recon.cut_lines) & set(lines.tolist()),
        unnamed_cuts=prior.unnamed_cuts | recon.unnamed_cuts,
        lazy_processes=prior.lazy_processes | set(recon.lazy_processes.tolist()),
        unnamed_pmd_kept=prior.unnamed_pmd_kept or unnamed_pmd,
        user_pfns=live_pfns(recon.events, prior.user_pfns, user_only=True),
        traced_pfns=live_pfns(recon.events, prior.traced_pfns, user_only=False),
        folio_ids=dict(zip(lines.tolist(), alive["folio"].tolist())),
        munmap_edges=munmap_edges(recon.events, prior.munmap_edges),
        folios=max(prior.folios, int(ledger["folio"].max()) + 1 if len(ledger) else 0),
        open_calls=set(recon.events.line[open_calls(recon.events)].tolist()),
        episodes=prior.episodes + len(recon.episodes),
    )


@dataclass
class Segment:
    """One segment's reconstruction (only what is new in it), its records whose folio is still
    allocated (``pending``: how it ends, and a kept one's ``zapped_later``, are not known yet)
    and the records of earlier segments it settles (``settled``, with ``zapped_later`` set)."""

    recon: Reconstruction | None  # None: the last, only settling what is left
    pending: np.ndarray  # boolean, per row of recon.folios
    settled: pd.DataFrame
    carried: int = 0  # rows of earlier segments at the start of recon.events

    def new_ledger(self) -> pd.DataFrame:
        """The ledger rows of the folios allocated in this segment (not carried into it)."""
        assert self.recon is not None
        ledger = self.recon.ledger
        return ledger[ledger["alloc_seq"] >= self.carried]


class Segmenter:
    """Feed event tables in time order (any chunking); get one :class:`Segment` per quiet
    stretch of the trace."""

    def __init__(self, machine: str, no_swap: bool = False, stale_rows: int | None = None) -> None:
        self.machine = machine
        self.no_swap = no_swap  # the capture had no swap device (reconstruct())
        self.stale_rows = stale_rows  # a silent open call stops holding the cut (quiet_cut())
        self.prior = Prior()
        self.buffer: pa.Table | None = None
        self.carry: pa.Table | None = None
        self.pending = pd.DataFrame()
        self.rows = 0  # rows of the trace in earlier segments

    def feed(self, table: pa.Table) -> Iterator[Segment]:
        """Add a table of events; yield the segment it completes, if any."""
        self.buffer = table if self.buffer is None else pa.concat_tables([self.buffer, table])
        cut = quiet_cut(EventArrays(self.buffer), self.stale_rows)
        if cut:
            done, self.buffer = self.buffer.slice(0, cut), self.buffer.slice(cut)
            yield self._segment(done)

    def finish(self) -> Iterator[Segment]:
        """Reconstruct what is left (windows still open stay open), then settle every kept
        record still pending: its folio outlived the trace, so it was not zapped in it."""
        if self.buffer is not None and self.buffer.num_rows:
            yield self._segment(self.buffer, last=True)
        self.buffer = None
        if len(self.pending):
            yield Segment(None, np.zeros(0, dtype=bool), self.pending.assign(zapped_later=False))
        self.pending = pd.DataFrame()

    def _segment(self, table: pa.Table, last: bool = False) -> Segment:
        whole = table if self.carry is None else pa.concat_tables([self.carry, table])
        first_line = int(table.column("line")[0].as_py())
        carried = self.prior.carried
        reported = self.prior.open_calls  # calls open before, reported by the segment they end in
        recon = reconstruct(whole, self.machine, self.prior, self.no_swap)
        rows = carried_rows(recon)
        self.prior = next_prior(self.prior, recon, len(rows))
        self.carry = _take_sorted(whole, rows)
        # a call still open at the end of the trace is reported as open, by the last segment
        still_open = set() if last else self.prior.open_calls
        recon = _only_new(recon, first_line, self.rows - carried, reported, still_open)
        self.rows += table.num_rows
        settled = self._settle(recon.ledger)
        folios = recon.folios
        ends = recon.ledger.set_index("folio")["end"]
        # whatever the record's outcome, its evidence opens with its folio's life, not over
        pending = (folios["folio"] >= 0).to_numpy() & (
            folios["folio"].map(ends).astype(str) == "alive"
        ).to_numpy()
        self.pending = pd.concat([self.pending, folios[pending]], ignore_index=True)
        return Segment(recon, pending, settled, carried)

    def _settle(self, ledger: pd.DataFrame) -> pd.DataFrame:
        """Earlier pending records whose folio ended in this segment: a kept one was zapped
        later."""
        if self.pending.empty:
            return self.pending
        by_folio = ledger.set_index("folio")
        state = self.pending["folio"].map(by_folio["end"].astype(str))
        done = (state != "alive").to_numpy() & state.notna().to_numpy()
        if not done.any():
            return self.pending.iloc[:0]
        settled = self.pending[done]
        settled = settled.assign(zapped_later=(settled["outcome"] == "kept").to_numpy())
        # the record's evidence opens with its folio's ledger evidence, which now tells its end
        lifetime = settled["folio"].map(by_folio["evidence"]).astype(str)
        rest = settled["evidence"].astype(str).str.partition("; ")
        settled["evidence"] = lifetime + rest[1] + rest[2]
        self.pending = self.pending[~done].reset_index(drop=True)
        return settled


def _take_sorted(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """``table.take(rows)`` for increasing ``rows``: taken from the slice that starts at the
    first (the carried rows are mostly near the end; a take over the whole table would join
    every chunk of every column first)."""
    first = int(rows[0]) if len(rows) else table.num_rows
    return table.slice(first).take(pa.array(rows - first))


def _only_new(
    recon: Reconstruction,
    first_line: int,
    shift: int,
    ended: set[int] = frozenset(),  # type: ignore[assignment]
    still_open: set[int] = frozenset(),  # type: ignore[assignment]
) -> Reconstruction:
    """Drop what the carried rows gave again (MADV_FREE calls, partial unmaps) but the calls
    open before (``ended``: their enter lines), and the calls still open at the end, which the
    segment that ends them reports (``still_open``); the episodes' rows become rows of the
    whole trace (``shift``: the first new row's there, less the carried rows before it)."""
    episodes = recon.episodes.copy()
    for column in ("start_seq", "end_seq", "last_seq"):
        seq = episodes[column]
        episodes[column] = seq.where(seq < 0, seq + shift)

    def new(frame: pd.DataFrame) -> pd.DataFrame:
        line = frame["start_line"]
        return frame[((line >= first_line) | line.isin(ended)) & ~line.isin(still_open)]

    lazy = new(recon.lazyfree)
    partial = new(recon.partial)
    return Reconstruction(
        recon.events,
        recon.ledger,
        episodes,
        recon.folios,
        lazy.reset_index(drop=True),
        recon.freed,
        partial.reset_index(drop=True),
        recon.signatures,
        recon.lazy_processes,
        recon.order0_frees,
        recon.write_faults,
        recon.cut_lines,
        recon.unnamed_cuts,
    )


def segments(tables: Iterable[pa.Table], machine: str) -> Iterator[Segment]:
    """Every segment of a stream of event tables."""
    segmenter = Segmenter(machine)
    for table in tables:
        yield from segmenter.feed(table)
    yield from segmenter.finish()
