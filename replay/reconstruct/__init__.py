"""Reconstruct one capture: reclaim episodes of every path, the large-folio ledger, each
folio's kind and unmap per episode, MADV_FREE calls and genuine partial unmaps.

Modules: :mod:`.events` (the event table as arrays), :mod:`.syscalls` (call windows),
:mod:`.ledger` (folios from allocation to free), :mod:`.episodes` (reclaim windows),
:mod:`.lazyfree` (MADV_FREE calls), :mod:`.coverage` (the calls whose ranges hold each folio),
:mod:`.kinds` (lazyfree / swap-backed / file / shmem), :mod:`.rss` (rss_stat steps),
:mod:`.unmaps` (per-folio records and how the kernel unmapped them), :mod:`.partial` (munmap /
MADV_DONTNEED cutting folios), :mod:`.flush_cpus` (where each folio's mm was loaded, from x86
tlb_flush), :mod:`.write_runs` (PTEs made writable one by one after a fork, from x86
write-protect faults). Every step works on whole columns (numpy joins in time order); no step
loops over events or folios in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
from folio_replay.parsers.table import Trace
from folio_replay.replay.reconstruct.coverage import Coverage
from folio_replay.replay.reconstruct.episodes import find_episodes
from folio_replay.replay.reconstruct.events import EventArrays
from folio_replay.replay.reconstruct.flush_cpus import mm_cpus
from folio_replay.replay.reconstruct.kinds import KindEvidence
from folio_replay.replay.reconstruct.lazyfree import lazyfree_calls, madvise_calls
from folio_replay.replay.reconstruct.ledger import build_ledger, retire_split
from folio_replay.replay.reconstruct.partial import partial_unmaps
from folio_replay.replay.reconstruct.prior import Prior
from folio_replay.replay.reconstruct.rss import rss_steps
from folio_replay.replay.reconstruct.unmaps import episode_folios, no_swap_splits
from folio_replay.replay.reconstruct.write_runs import write_protect_faults

__all__ = ["Reconstruction", "reconstruct"]


@dataclass
class Reconstruction:
    """What the trace says the kernel did, with the evidence of each row."""

    events: EventArrays
    ledger: pd.DataFrame
    episodes: pd.DataFrame  # one row per reclaim episode, signature columns included
    folios: pd.DataFrame  # one row per large folio per episode
    lazyfree: pd.DataFrame
    freed: Coverage  # the MADV_FREE calls that hold each ledger folio
    partial: pd.DataFrame
    signatures: dict[int, dict]  # per episode: rss_steps / tlb_flush_pages dicts and more
    lazy_processes: np.ndarray  # processes (mm ids) that called MADV_FREE
    # per episode, the order-0 mm_page_free rows of its thread inside it (at least the page
    # tables its unmaps freed); None when the trace does not record page frees
    order0_frees: dict[int, int] | None
    # x86 write-protect faults inside ledger folios (.write_runs); None where the trace cannot
    # show them
    write_faults: pd.DataFrame | None = None
    # allocation lines of the folios the partial rows cut (.partial.PartialUnmaps.cut)
    cut_lines: set[int] = field(default_factory=set)
    # the callers whose calls cut folios the trace cannot name (.partial.PartialUnmaps.unnamed)
    unnamed_cuts: set[int] = field(default_factory=set)

    @property
    def small_discards(self) -> int:
        """Order-0 lazyfree pages discarded by reclaim (they count in pglazyfreed)."""
        return int(self.episodes["small_discards"].sum()) if len(self.episodes) else 0

    @property
    def small_swapped(self) -> int:
        """Order-0 pages reclaim swapped out (they count in pswpout)."""
        return int(self.episodes["small_swapped"].sum()) if len(self.episodes) else 0

    @property
    def has_flush_events(self) -> bool:
        """Whether the trace has x86 ``tlb_flush`` events (arm64 and riscv have none)."""
        return self.events.has("tlb_flush")


def reconstruct(
    trace: Trace | pa.Table, machine: str, prior: Prior | None = None, no_swap: bool = False
) -> Reconstruction:
    """Run every reconstruction step on one trace captured on ``machine`` (``uname -m``:
    aarch64 maps large folios with contpte blocks); ``prior``: what earlier segments of the
    same trace established (:mod:`.segments`), whose carried rows head the table;
    ``no_swap``: the capture had no swap device at all (:func:`.unmaps.no_swap_splits`)."""
    prior = prior or Prior()
    events = EventArrays(trace.table if isinstance(trace, Trace) else trace)
    ledger = build_ledger(events, prior)
    # x86 error codes tell a write-protect fault; arm64 has no fault addresses, riscv's cause
    # has no present bit (replay/reconstruct/write_runs.py)
    write_faults = write_protect_faults(events, ledger) if machine == "x86_64" else None
    partial = partial_unmaps(events, ledger, prior, write_faults)
    ledger = retire_split(ledger, events, partial.split)
    episodes = find_episodes(events)
    freed = Coverage(ledger, madvise_calls(events, "MADV_FREE"))
    kinds = KindEvidence.from_trace(events, freed, prior)
    rss = rss_steps(events)
    folios, signatures, order0_frees = episode_folios(
        events,
        ledger,
        episodes,
        rss,
        kinds,
        contpte=machine == "aarch64",
        write_faults=write_faults,
    )
    folios["mm_cpus"] = mm_cpus(events, episodes, rss, folios)
    if no_swap:
        folios = no_swap_splits(folios, episodes)
    shown = signatures.assign(
        **{
            column: signatures[column].astype(str)
            for column in ("rss_steps", "file_rss_steps", "tlb_flush_pages")
        }
    )
    episodes = episodes.merge(shown, on="episode", how="left")
    # episodes numbered over the whole trace
    for frame in (episodes, folios, signatures):
        frame["episode"] += prior.episodes
    return Reconstruction(
        events,
        ledger,
        episodes,
        folios,
        lazyfree_calls(events, freed),
        freed,
        partial.frame,
        {int(s["episode"]): s for s in signatures.to_dict("records")},
        kinds.lazy_processes,
        (
            {prior.episodes + e: int(count) for e, count in enumerate(order0_frees.tolist())}
            if events.has("mm_page_free")
            else None
        ),
        write_faults,
        partial.cut,
        partial.unnamed,
    )
