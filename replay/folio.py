"""The interface between reconstruction and the unmap models.

Reconstruction (``folio_replay.replay.folios``) turns a trace into :class:`FolioState` records, one
per large folio that reclaim tried to unmap; each model (``folio_replay.replay.models``) turns one
:class:`FolioState`
into an :class:`UnmapResult`: the primitive operations it performs and the counters it moves.
Cost tables (``folio_replay.replay.costs.tables``) price an :class:`UnmapResult` per architecture.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import NamedTuple


@dataclass(frozen=True)
class FolioState:
    """One large folio as reclaim finds it.

    ``kind`` says what reclaim does with it once unmapped: a ``lazyfree`` anonymous folio is
    discarded (or kept if redirtied), a ``swapbacked`` one gets swap entries and is written to
    swap, a ``file`` (page cache) or ``shmem`` folio is dropped from the mapping.

    ``dirty_page`` is the index of the first page whose PTE was written after MADV_FREE:
    ``None`` when the folio is clean, ``UNKNOWN_DIRTY_PAGE`` when the trace shows that it was
    redirtied but not which page (callers then replay each possibility, see
    :func:`expand_unknown`, and report bounds).

    The mapped pages are taken to be the first ``mapped_pages`` pages of the folio (a genuine
    partial unmap that removed its tail). ``batch_limit`` is the number of pages, counted from
    the folio's first page, up to the end of its VMA or page table (``pmd_addr_end``), when that
    falls inside the folio; pages past it are walked in a second batch (6.16+).
    ``run_starts`` are the pages at which a run of PTEs with other write bits starts (a page a
    write-protect fault made writable on its own after a fork: the trace's
    ``write_run_starts``); batches that respect the write bit (29f40594a281) end there.
    ``contpte`` (arm64 only) means the PTEs are folded into 16-page contiguous blocks; for a
    PMD-mapped folio it means a PMD split would fold the new PTEs (arm64 with CONFIG_ARM64_CONTPTE).
    """

    nr_pages: int
    pmd_mapped: bool = False
    mapped_pages: int | None = None  # PTEs still mapping it; None means all nr_pages
    dirty_page: int | None = None
    kind: str = "lazyfree"  # lazyfree, swapbacked, file or shmem (replay.reconstruct.kinds)
    swap_fallback: bool = False  # swap-backed: no swap slot for the whole folio, split first
    no_swap: bool = False  # with swap_fallback: no swap device at all, the pages are kept
    partially_mapped: bool = False  # already queued for deferred split before reclaim
    contpte: bool = False  # arm64: mapped with contiguous-PTE blocks
    batch_limit: int | None = None  # pages up to the VMA / page-table end (6.16+ batches)
    run_starts: tuple[int, ...] = ()  # pages starting a run of other write bits (ascending)
    remote_cpus: int = 0  # other CPUs on which the mm is active
    mm_loaded: bool = True  # the reclaiming CPU has the mm loaded (x86 flushes it there)

    @property
    def size_kb(self) -> int:
        """Folio size in KiB (4 KiB base pages)."""
        return self.nr_pages * 4

    @property
    def mapped(self) -> int:
        """Number of pages mapped when reclaim starts."""
        return self.nr_pages if self.mapped_pages is None else self.mapped_pages


UNKNOWN_DIRTY_PAGE = -1


def expand_unknown(state: FolioState) -> list[FolioState]:
    """Every concrete state an ``UNKNOWN_DIRTY_PAGE`` state may stand for (one per mapped
    page); a state whose dirty page is known is returned alone."""
    if state.dirty_page != UNKNOWN_DIRTY_PAGE:
        return [state]
    return [replace(state, dirty_page=page) for page in range(state.mapped)]


class Flush(NamedTuple):
    """One TLB flush request made while unmapping.

    ``pages`` is the number of 4 KiB pages the flushed range covers (-1: the whole mm).
    ``deferrable`` marks the unmap flush of try_to_unmap_one() that reclaim (TTU_BATCH_FLUSH)
    may queue in the tlbbatch when the arch says so (``should_defer_flush()``); other flushes
    (PMD clear or invalidate, arm64 contpte unfold) are synchronous. ``why`` names the kernel
    call that makes it; ``flush_pmd_tlb_range`` flushes are walked at the arch's PMD stride
    (policy ``pmd_flush_stride_kb``).
    """

    pages: int
    deferrable: bool
    why: str


@dataclass
class UnmapResult:
    """What one algorithm does to one folio.

    ``ops`` counts primitive operations by name (vocabulary in ``replay/costs/ops.toml``);
    ``flushes`` lists the TLB flush requests (:class:`Flush`), priced per arch;
    ``counters`` holds the kernel counters moved, by their stats names (``split_deferred``,
    ``thp_split_pmd``, ``thp_deferred_split_page``, ``pglazyfreed``, ``swpout``,
    ``thp_swpout``, ``pswpout``);
    ``rss_steps``, ``file_rss_steps``, ``swap_entries`` and ``tlb_flush_pages`` are the trace
    signatures the kernel would emit (``rss_stat`` MM_ANONPAGES decrements in pages, one per
    event; MM_FILEPAGES / MM_SHMEMPAGES decrements likewise; MM_SWAPENTS pages added; x86
    ``tlb_flush`` pages per event on the reclaiming CPU, -1 for a full flush;
    ``tlb_flush_required`` those of them that no deferral can remove: the synchronous PMD
    flushes); ``pgtables_freed``: page-table pages the unmap frees (the deposited table of a
    PMD THP discarded whole: one order-0 ``mm_page_free`` by the reclaiming thread);
    ``outcome`` is ``discarded`` (unmapped and freed: a lazyfree folio discarded, a swap-backed
    one swapped out, a file one dropped), ``kept`` (redirtied, set swapbacked, still wholly
    mapped) or ``partial`` (redirtied after some pages were unmapped: set swapbacked, partly
    mapped);
    ``remote_cpus`` and ``mm_loaded`` are copied from the state (flush pricing depends on
    them);
    ``zap_counters`` are the counters a later zap of the folio's remaining mapping (munmap,
    exit) moves because of the state this unmap left it in (arm64: a kept folio whose PTEs
    mix unfolded and contiguous blocks is zapped in several batches and queued for deferred
    split then), not counted in ``counters``.
    """

    outcome: str
    remote_cpus: int = 0
    mm_loaded: bool = True
    ops: Counter = field(default_factory=Counter)
    flushes: list[Flush] = field(default_factory=list)
    counters: Counter = field(default_factory=Counter)
    rss_steps: list[int] = field(default_factory=list)
    file_rss_steps: list[int] = field(default_factory=list)
    swap_entries: int = 0
    tlb_flush_pages: list[int] = field(default_factory=list)
    tlb_flush_required: list[int] = field(default_factory=list)
    pgtables_freed: int = 0
    zap_counters: Counter = field(default_factory=Counter)
