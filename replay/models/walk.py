"""The steps try_to_unmap_one() (mm/rmap.c) takes on one large folio, shared by the models,
which differ only in how many PTEs each step covers, per folio kind, and in the PMD path.

Kernel facts used here, read in Debian's linux-source 6.12.117 and 7.2.13 unless said:
- each PTE batch is cleared (ptep_get_and_clear / get_and_clear_full_ptes, which ORs the dirty
  bits of the batch into the value returned), its flush is requested (deferred by reclaim's
  TTU_BATCH_FLUSH where the arch allows: set_tlb_ubc_flush_pending, else ptep_clear_flush /
  flush_tlb_range), and a dirty PTE marks the folio dirty (folio_mark_dirty);
- the MADV_FREE check then restores the batch and sets the folio swap-backed if the folio is
  dirty (6.12: "ref_count == 1 + map_count && !folio_test_dirty" else set_pte_at +
  folio_set_swapbacked; 6.15+ faeb2831b517 "set folio swapbacked iff folios are dirty":
  set_ptes + folio_set_swapbacked), else discards it: add_mm_counter(MM_ANONPAGES, -nr) (one
  rss_stat event), folio_remove_rmap_pte(s), folio_put(_refs);
- __folio_remove_rmap() queues the folio for deferred split when pages were unmapped and some
  stay mapped ("partially_mapped = nr && atomic_read(mapped)"), and deferred_split_folio() counts
  split_deferred (and thp_deferred_split_page for PMD-sized folios) only for a folio of order > 1
  not yet marked partially mapped (mm/huge_memory.c);
- shrink_folio_list() (mm/vmscan.c) frees a folio that ends unmapped and counts its pages in
  pglazyfreed.
Other kinds (Debian linux-source 6.12.116-118, 6.18.3, 7.0.13-7.3.4):
- a swap-backed anonymous folio gets a swap slot for the whole folio before the unmap
  (add_to_swap / folio_alloc_swap in shrink_folio_list), so it is in the swap cache while its
  PTEs are replaced one by one with swap entries (swap_duplicate / folio_dup_swap,
  dec_mm_counter(MM_ANONPAGES) + inc_mm_counter(MM_SWAPENTS): two rss_stat events per PTE);
  folio_unmap_pte_batch() returns 1 for it in every release read; deferred_split_folio()
  returns early for a folio in the swap cache, so no split_deferred; written out whole it counts
  swpout for its size, thp_swpout when PMD-sized and pswpout per page (mm/page_io.c);
- a page-cache (file) or shmem folio is dropped from the mapping: one dec_mm_counter
  (mm_counter_file: MM_FILEPAGES, MM_SHMEMPAGES for shmem) per PTE before 7.0, one
  add_mm_counter(-nr) per batch from 7.0 (a67fe41e214f); deferred split is anon-only; a PMD
  mapping of it is zapped by split_huge_pmd_locked() (thp_split_pmd +1, pmdp_huge_clear_flush,
  one add_mm_counter(-512)); shmem is then swapped out like anon memory.
arm64 contpte (arch/arm64/mm/contpte.c, arch/arm64/include/asm/pgtable.h): clearing one PTE of
a contiguous block, or a batch that starts or ends inside one (contpte_try_unfold_partial),
first unfolds the block: contpte_convert() clears its 16 PTEs, ORs their dirty and young bits,
flushes the block and rewrites all 16 with the gathered bits, so from then on a write to any
page of the block shows as a dirty PTE on every page of it. A kept folio left with some blocks
unfolded and others contiguous is zapped later (munmap, exit: zap_present_ptes) in several
folio_pte_batch() runs, because __pte_batch_clear_ignored() (mm/internal.h, 6.12) does not
ignore PTE_CONT: the first run leaves it partially mapped and deferred split counts it. Evidence:
aarch64/6.12.117+deb13-cloud-arm64/pmd-redirty, split_deferred (2048 kB) +64 and
thp_deferred_split_page +64 with no rss_stat step inside MADV_PAGEOUT (the x86 bundle of the
same scenario, without contpte, shows 0).
"""

from __future__ import annotations

from collections.abc import Callable

from folio_replay.replay.costs.tables import load_table
from folio_replay.replay.folio import UNKNOWN_DIRTY_PAGE, Flush, FolioState, UnmapResult

# arch/arm64/include/asm/pgtable-hwdef.h: 1 << CONFIG_ARM64_CONT_PTE_SHIFT (4) with 4 KiB pages
CONT_PTES = 16
PMD_PAGES = 512  # HPAGE_PMD_NR with 4 KiB pages


KINDS = ("lazyfree", "swapbacked", "file", "shmem")


def check(state: FolioState) -> None:
    """Refuse states the models do not cover, with the reason."""
    if state.nr_pages < 2:
        raise ValueError(f"not a large folio: nr_pages={state.nr_pages}")
    if state.kind not in KINDS:
        raise ValueError(f"kind {state.kind!r}: the models cover {', '.join(KINDS)}")
    if state.dirty_page == UNKNOWN_DIRTY_PAGE:
        raise ValueError("dirty page unknown: replay each of replay.folio.expand_unknown(state)")
    if not 0 < state.mapped <= state.nr_pages:
        raise ValueError(f"mapped_pages={state.mapped_pages} outside 1..{state.nr_pages}")
    if state.dirty_page is not None and not 0 <= state.dirty_page < state.mapped:
        raise ValueError(f"dirty_page={state.dirty_page} is not a mapped page")
    if state.pmd_mapped and (state.nr_pages != PMD_PAGES or state.mapped != PMD_PAGES):
        raise ValueError("a PMD mapping maps a whole 512-page folio")
    if state.pmd_mapped and state.run_starts:
        raise ValueError("a PMD mapping has no PTE runs (run_starts)")
    if state.batch_limit is not None and state.batch_limit < 1:
        raise ValueError(f"batch_limit={state.batch_limit} must be >= 1")
    if any(not 0 < start < state.nr_pages for start in state.run_starts) or list(
        state.run_starts
    ) != sorted(set(state.run_starts)):
        raise ValueError(
            f"run_starts={state.run_starts} must ascend inside 1..{state.nr_pages - 1}"
        )
    if state.swap_fallback and state.kind != "swapbacked":
        raise ValueError("swap_fallback applies to swap-backed folios only")
    if state.no_swap and not state.swap_fallback:
        raise ValueError("no_swap describes a swap fallback (swap_fallback)")


class Walk:
    """What one try_to_unmap_one() call does to one folio, step by step."""

    def __init__(self, state: FolioState) -> None:
        check(state)
        self.state = state
        self.result = UnmapResult(
            outcome="discarded", remote_cpus=state.remote_cpus, mm_loaded=state.mm_loaded
        )
        self.mapped = state.mapped
        self.discarded = 0
        self.partially_mapped = state.partially_mapped
        self.dirty_page = state.dirty_page
        self.contpte = state.contpte
        self.unfolded: set[int] = set()
        self.op("folio_reclaim")

    def op(self, name: str, count: int = 1) -> None:
        """Count ``count`` primitive operations ``name`` (replay/costs/ops.toml)."""
        self.result.ops[name] += count

    def flush(self, pages: int, deferrable: bool, why: str) -> None:
        """Request a TLB flush of ``pages`` 4 KiB pages."""
        self.result.flushes.append(Flush(pages, deferrable, why))

    def unfold(self, page: int) -> None:
        """arm64: contpte_convert() of the block holding ``page``, once."""
        block = page // CONT_PTES
        if not self.contpte or block in self.unfolded:
            return
        self.unfolded.add(block)
        self.op("contpte_unfold")
        self.op("pte_clear", CONT_PTES)
        self.op("pte_write", CONT_PTES)
        self.flush(CONT_PTES, False, "contpte_convert")

    def clear(self, start: int, nr: int) -> None:
        """One walk step clearing the PTEs of pages ``start .. start+nr-1`` and requesting
        their flush (unfolding the contpte blocks the batch cuts through)."""
        self.op("walk_step")
        if nr == 1 or start % CONT_PTES:
            self.unfold(start)
        if nr > 1 and (start + nr) % CONT_PTES:
            self.unfold(start + nr - 1)
        self.op("pte_clear", nr)
        self.flush(nr, True, "try_to_unmap_one")

    def sees_dirty(self, start: int, nr: int) -> bool:
        """Whether the PTE value cleared for the batch is dirty: the written page is in the
        batch, or in an unfolded contpte block the batch touches."""
        dirty = self.dirty_page
        if dirty is None:
            return False
        if start <= dirty < start + nr:
            return True
        block = dirty // CONT_PTES
        return (
            block in self.unfolded and start // CONT_PTES <= block <= (start + nr - 1) // CONT_PTES
        )

    def keep(self, start: int, nr: int) -> UnmapResult:
        """Redirtied: folio_mark_dirty, the MADV_FREE check fails, the batch's PTEs are
        restored and the folio set swap-backed; the walk aborts."""
        self.op("dirty_mark")
        self.op("lazyfree_check")
        self.op("pte_write", nr)
        self.op("swapbacked_set")
        self.result.outcome = "partial" if self.discarded else "kept"
        if not self.discarded:
            self.later_zap()
        return self.finish()

    def discard(self, start: int, nr: int) -> None:
        """The MADV_FREE check passes: rss, rmap and references of the batch are dropped."""
        self.op("lazyfree_check")
        self.rss(nr)
        self.drop_rmap(nr)
        if self.mapped > 0:
            self.deferred_split()

    def drop_rmap(self, nr: int) -> None:
        """folio_remove_rmap_pte(s)() and folio_put(_refs)() of a batch of ``nr`` pages."""
        self.op("rmap_remove")
        self.op("rmap_page", nr)
        self.op("folio_put")
        self.mapped -= nr
        self.discarded += nr

    def swap_out(self, start: int, nr: int) -> None:
        """A swap-backed batch: each PTE replaced by a swap entry of the folio's slot
        (swap_duplicate / folio_dup_swap, set_pte_at of the swap PTE), MM_ANONPAGES -nr and
        MM_SWAPENTS +nr (one event each per call: per PTE in every release read), rmap and
        references dropped. The folio is in the swap cache: deferred split never counts it."""
        self.op("swap_entry", nr)
        self.op("pte_write", nr)
        self.rss(nr)
        self.op("rss_update")
        self.result.swap_entries += nr
        self.drop_rmap(nr)

    def drop_file(self, start: int, nr: int) -> None:
        """A page-cache or shmem batch: MM_FILEPAGES / MM_SHMEMPAGES -nr (one event per call),
        rmap and references dropped; deferred split is anon-only."""
        self.op("rss_update")
        self.result.file_rss_steps.append(nr)
        self.drop_rmap(nr)

    def later_zap(self) -> None:
        """A kept folio mixing unfolded and contiguous blocks: a later zap takes it in more
        than one batch and queues it for deferred split (``zap_counters``)."""
        blocks = -(-self.state.mapped // CONT_PTES)
        if self.contpte and 0 < len(self.unfolded) < blocks and not self.partially_mapped:
            self.result.zap_counters["split_deferred"] += 1
            self.result.zap_counters["nr_anon_partially_mapped"] += 1
            if self.state.nr_pages >= PMD_PAGES:
                self.result.zap_counters["thp_deferred_split_page"] += 1

    def rss(self, nr: int) -> None:
        """One add_mm_counter(MM_ANONPAGES, -nr): one rss_stat event."""
        self.op("rss_update")
        self.result.rss_steps.append(nr)

    def deferred_split(self) -> None:
        """__folio_remove_rmap() left the folio partially mapped: deferred_split_folio()."""
        if self.partially_mapped or self.state.nr_pages <= 2:  # order <= 1: never queued
            return
        self.partially_mapped = True
        self.op("deferred_split")
        self.result.counters["split_deferred"] += 1
        self.result.counters["nr_anon_partially_mapped"] += 1
        if self.state.nr_pages >= PMD_PAGES:  # folio_test_pmd_mappable()
            self.result.counters["thp_deferred_split_page"] += 1

    def freed(self) -> UnmapResult:
        """Every PTE is gone: shrink_folio_list() frees the folio (a lazyfree one counts in
        pglazyfreed; a swap-backed or shmem one is first written to swap: swpout for its
        size, thp_swpout when PMD-sized, pswpout per page, mm/page_io.c; a page-cache folio is
        dropped, after writeback when dirty). The swap write is the same in every model."""
        self.result.outcome = "discarded"
        self.op("folio_free")
        self.op("page_free", self.state.nr_pages)
        nr = self.state.nr_pages
        if self.state.kind == "lazyfree":
            self.result.counters["pglazyfreed"] += nr
        elif self.state.kind in ("swapbacked", "shmem"):
            self.swap_write(nr)
            self.result.counters["swpout"] += 1
            self.result.counters["pswpout"] += nr
            if nr >= PMD_PAGES:
                self.result.counters["thp_swpout"] += 1
        return self.finish()

    def swap_write(self, nr: int) -> None:
        """shrink_folio_list() -> pageout() writes an unmapped swap-backed folio of ``nr``
        pages to the slot folio_alloc_swap() gave it (mm/vmscan.c, mm/page_io.c): a fixed
        part and ``nr`` pages."""
        self.op("swap_write")
        self.op("swap_write_page", nr)

    def finish(self) -> UnmapResult:
        """The result, with the x86 tlb_flush signature of its flushes (the x86 flush
        policy is data: replay/costs/x86.toml)."""
        x86 = load_table("x86")
        for flush in self.result.flushes:
            events = x86.tlb_flush_events(flush, self.state.remote_cpus, self.state.mm_loaded)
            self.result.tlb_flush_pages += events
            if not flush.deferrable:
                self.result.tlb_flush_required += events
        return self.result

    def walk_ptes(self, batch: Callable[[int], int]) -> UnmapResult:
        """The PTE loop from the first mapped page, ``batch(page)`` PTEs per step."""
        page = 0
        kind = self.state.kind
        while page < self.state.mapped:
            nr = batch(page)
            self.clear(page, nr)
            if kind == "lazyfree":
                if self.sees_dirty(page, nr):
                    return self.keep(page, nr)
                self.discard(page, nr)
            elif kind == "swapbacked":
                self.swap_out(page, nr)
            else:
                self.drop_file(page, nr)
            page += nr
        return self.freed()

    def swap_split(self) -> UnmapResult:
        """No swap slot for the whole folio (folio_alloc_swap() failed, e.g. a swap file
        without large-folio clusters): shrink_folio_list() splits it (split_folio_to_list():
        unmap_folio() moves each PTE to a migration entry with try_to_migrate_one(), one at a
        time in every release read, so the folio, not in the swap cache, is queued for
        deferred split after the first; the folio is split and the PTEs restored) and swaps
        its pages out one by one as order-0 folios. Counts swpout_fallback for its size
        (thp_swpout_fallback when PMD-sized) and pswpout per page (mm/vmscan.c,
        mm/huge_memory.c; the same code in 6.12 and 7.x). With no swap device at all
        (``no_swap``) the first order-0 page finds no slot either (activate_locked_split): the
        split folio's pages stay mapped and nothing is written."""
        nr = self.state.mapped
        if self.state.pmd_mapped:
            self.split_pmd()
        for page in range(nr):
            self.clear(page, 1)
            self.op("pte_write")  # the migration entry
            self.op("rmap_remove")
            self.op("rmap_page")
            self.mapped -= 1
            self.discarded += 1
            if self.mapped > 0:
                self.deferred_split()
        self.op("folio_split")
        self.op("pte_write", nr)  # remap_page(): the PTEs restored
        self.result.counters["swpout_fallback"] += 1
        if self.state.nr_pages >= PMD_PAGES:
            self.result.counters["thp_swpout_fallback"] += 1
        self.mapped = nr
        if self.state.no_swap:
            self.result.outcome = "kept"
            return self.finish()
        for page in range(nr):
            self.op("folio_reclaim")
            self.clear(page, 1)
            self.swap_out(page, 1)
            self.swap_write(1)
        self.result.outcome = "discarded"
        self.op("page_free", self.state.nr_pages)
        self.result.counters["pswpout"] += nr
        return self.finish()

    def zap_file_pmd(self) -> UnmapResult:
        """A PMD-mapped page-cache or shmem folio: split_huge_pmd_locked() of a file VMA
        zaps the PMD instead of building a PTE table (mm/huge_memory.c
        __split_huge_pmd_locked(), !vma_is_anonymous: thp_split_pmd +1,
        pmdp_huge_clear_flush(), folio_remove_rmap_pmd(), add_mm_counter(-512)); the walk then
        finds no PTE. The same in 6.12 and every 7.x read."""
        self.op("walk_step")
        self.op("pmd_clear")
        self.flush(PMD_PAGES, False, "flush_pmd_tlb_range")
        self.result.counters["thp_split_pmd"] += 1
        self.drop_file(0, PMD_PAGES)
        return self.freed()

    def discard_pmd(self) -> UnmapResult:
        """unmap_huge_pmd_locked() -> __discard_anon_folio_pmd_locked() (mm/huge_memory.c,
        2f9b43d617e2, 6.15+): a dirty PMD or folio sets swap-backed and keeps the mapping
        untouched; a clean one is cleared (pmdp_huge_clear_flush), its rmap, deposited page
        table and 512 rss pages dropped at once."""
        self.op("walk_step")
        if self.dirty_page is not None:
            self.op("dirty_mark")
            self.op("swapbacked_set")
            self.result.outcome = "kept"
            return self.finish()
        self.op("pmd_clear")
        self.flush(PMD_PAGES, False, "flush_pmd_tlb_range")
        self.op("lazyfree_check")
        self.op("rmap_remove")
        self.op("deposit_zap")
        self.result.pgtables_freed += 1  # zap_deposited_table(): pte_free() of the deposit
        self.rss(PMD_PAGES)
        self.op("folio_put")
        self.mapped = 0
        return self.freed()

    def split_pmd(self) -> None:
        """split_huge_pmd_locked() for TTU_SPLIT_HUGE_PMD (mm/huge_memory.c
        __split_huge_pmd_locked, the same in 6.12.118, 6.18.3 and 7.3.4): thp_split_pmd +1,
        pmdp_invalidate() (a synchronous PMD flush), folio_add_anon_rmap_ptes() over the 512
        pages (each page's _mapcount raised), a dirty PMD dirties the folio and every new PTE,
        512 PTEs written (folded into contpte blocks on arm64), folio_remove_rmap_pmd(). The
        walk then restarts on the PTEs."""
        self.op("walk_step")
        self.op("pmd_clear")
        self.flush(PMD_PAGES, False, "flush_pmd_tlb_range")
        self.op("pmd_split")
        self.op("pmd_split_page", PMD_PAGES)
        self.op("rmap_remove")
        self.result.counters["thp_split_pmd"] += 1
        if self.dirty_page is not None:
            self.op("dirty_mark")
            self.dirty_page = 0  # every PTE carries the PMD's dirty bit


def per_pte(_page: int) -> int:
    """One PTE per walk step (page_vma_mapped_walk without batching)."""
    return 1


def capped_batch(state: FolioState) -> Callable[[int], int]:
    """folio_unmap_pte_batch() (6.16+ ddd05742b45b): from its page to the end of the
    folio's mapped pages, capped at pmd_addr_end(addr, vma->vm_end) (``batch_limit``) and at
    the next run of other write bits (``run_starts``: empty unless the model respects them,
    :attr:`folio_replay.replay.models.Model.respects_write`)."""

    def batch(page: int) -> int:
        end = state.mapped
        if state.batch_limit is not None and page < state.batch_limit:
            end = min(end, state.batch_limit)
        end = min([end, *(start for start in state.run_starts if start > page)])
        return end - page

    return batch


def pte_mapped(state: FolioState, batched: tuple[str, ...]) -> UnmapResult:
    """The PTE walk of a PTE-mapped folio, capped batches for the ``batched`` kinds and one
    PTE per step for the others."""
    walk = Walk(state)
    if state.swap_fallback:
        return walk.swap_split()
    return walk.walk_ptes(capped_batch(state) if state.kind in batched else per_pte)


def pmd_mapped_other(walk: Walk) -> UnmapResult | None:
    """The PMD path every release shares for non-lazyfree folios: a file or shmem PMD is
    zapped; a swap-backed one is split (TTU_SPLIT_HUGE_PMD builds a PTE table for an anon
    VMA) and walked per PTE; None for a lazyfree folio (each model has its own path)."""
    kind = walk.state.kind
    if walk.state.swap_fallback:
        return walk.swap_split()
    if kind in ("file", "shmem"):
        return walk.zap_file_pmd()
    if kind == "swapbacked":
        walk.split_pmd()
        return walk.walk_ptes(per_pte)
    return None
