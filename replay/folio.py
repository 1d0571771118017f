"""The interface between reconstruction and the unmap models.

Reconstruction (``replay.folios``) turns a trace into :class:`FolioState` records, one per large
folio that reclaim tried to unmap; each model (``replay.models``) turns one :class:`FolioState`
into an :class:`UnmapResult`: the primitive operations it performs and the counters it moves.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FolioState:
    """One large folio as reclaim finds it.

    ``dirty_page`` is the index of the first page whose PTE was written after MADV_FREE:
    ``None`` when the folio is clean, ``UNKNOWN_DIRTY_PAGE`` when the trace shows that it was
    redirtied but not which page (callers then replay each possibility and report bounds).
    """

    nr_pages: int
    pmd_mapped: bool = False
    mapped_pages: int | None = None  # PTEs still mapping it; None means all nr_pages
    dirty_page: int | None = None
    lazyfree: bool = True  # swapbacked cleared by MADV_FREE
    partially_mapped: bool = False  # already queued for deferred split before reclaim
    contpte: bool = False  # arm64: mapped with contiguous-PTE blocks
    batch_limit: int | None = None  # pages up to the VMA / page-table end (6.16+ batches)
    remote_cpus: int = 0  # other CPUs on which the mm is active

    @property
    def size_kb(self) -> int:
        """Folio size in KiB (4 KiB base pages)."""
        return self.nr_pages * 4


UNKNOWN_DIRTY_PAGE = -1


@dataclass
class UnmapResult:
    """What one algorithm does to one folio.

    ``ops`` counts primitive operations by name (vocabulary in ``replay/costs/ops.toml``);
    ``flushes`` lists TLB flush requests by page count (-1: whole mm), priced per arch;
    ``counters`` holds the kernel counters moved, by their stats names (``split_deferred``,
    ``thp_split_pmd``, ``thp_deferred_split_page``, ``pglazyfreed``);
    ``rss_steps`` and ``tlb_flush_pages`` are the trace signatures the kernel would emit
    (``rss_stat`` size steps in pages, x86 ``tlb_flush`` pages per event);
    ``outcome`` is ``discarded``, ``kept`` (redirtied, set swapbacked) or ``partial``.
    """

    outcome: str
    ops: Counter = field(default_factory=Counter)
    flushes: list[int] = field(default_factory=list)
    counters: Counter = field(default_factory=Counter)
    rss_steps: list[int] = field(default_factory=list)
    tlb_flush_pages: list[int] = field(default_factory=list)
