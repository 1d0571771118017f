"""The steps try_to_unmap_one() (mm/rmap.c) takes on one lazyfree large folio, shared by the
models, which differ only in how many PTEs each step covers and in the PMD path.

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


def check(state: FolioState) -> None:
    """Refuse states the models do not cover, with the reason."""
    if state.nr_pages < 2:
        raise ValueError(f"not a large folio: nr_pages={state.nr_pages}")
    if not state.lazyfree:
        raise ValueError("the models cover lazyfree (MADV_FREE) folios only")
    if state.dirty_page == UNKNOWN_DIRTY_PAGE:
        raise ValueError(
            "dirty page unknown: replay each of folio_replay.replay.folio.expand_unknown(state)"
        )
    if not 0 < state.mapped <= state.nr_pages:
        raise ValueError(f"mapped_pages={state.mapped_pages} outside 1..{state.nr_pages}")
    if state.dirty_page is not None and not 0 <= state.dirty_page < state.mapped:
        raise ValueError(f"dirty_page={state.dirty_page} is not a mapped page")
    if state.pmd_mapped and (state.nr_pages != PMD_PAGES or state.mapped != PMD_PAGES):
        raise ValueError("a PMD mapping maps a whole 512-page folio")
    if state.batch_limit is not None and state.batch_limit < 1:
        raise ValueError(f"batch_limit={state.batch_limit} must be >= 1")


class Walk:
    """What one try_to_unmap_one() call does to one folio, step by step."""

    def __init__(self, state: FolioState) -> None:
        check(state)
        self.state = state
        self.result = UnmapResult(outcome="discarded", remote_cpus=state.remote_cpus)
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
        self.op("rmap_remove")
        self.op("rmap_page", nr)
        self.op("folio_put")
        self.mapped -= nr
        self.discarded += nr
        if self.mapped > 0:
            self.deferred_split()

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
        """Every PTE is gone: shrink_folio_list() frees the folio."""
        self.result.outcome = "discarded"
        self.op("folio_free")
        self.op("page_free", self.state.nr_pages)
        self.result.counters["pglazyfreed"] += self.state.nr_pages
        return self.finish()

    def finish(self) -> UnmapResult:
        """The result, with the x86 tlb_flush signature of its flushes (the x86 flush
        policy is data: replay/costs/x86.toml)."""
        x86 = load_table("x86")
        for flush in self.result.flushes:
            self.result.tlb_flush_pages += x86.tlb_flush_events(flush, self.state.remote_cpus)
        return self.result

    def walk_ptes(self, batch: Callable[[int], int]) -> UnmapResult:
        """The PTE loop from the first mapped page, ``batch(page)`` PTEs per step."""
        page = 0
        while page < self.state.mapped:
            nr = batch(page)
            self.clear(page, nr)
            if self.sees_dirty(page, nr):
                return self.keep(page, nr)
            self.discard(page, nr)
            page += nr
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
        self.rss(PMD_PAGES)
        self.op("folio_put")
        self.mapped = 0
        return self.freed()

    def split_pmd(self) -> None:
        """split_huge_pmd_locked() for TTU_SPLIT_HUGE_PMD (mm/huge_memory.c
        __split_huge_pmd_locked, 6.12): thp_split_pmd +1, pmdp_invalidate() (a synchronous PMD
        flush), a dirty PMD dirties the folio and every new PTE, 512 PTEs written with set_ptes()
        (folded into contpte blocks on arm64). The walk then restarts on the PTEs."""
        self.op("walk_step")
        self.op("pmd_clear")
        self.flush(PMD_PAGES, False, "flush_pmd_tlb_range")
        self.op("pmd_split")
        self.op("pte_write", PMD_PAGES)
        self.result.counters["thp_split_pmd"] += 1
        if self.dirty_page is not None:
            self.op("dirty_mark")
            self.dirty_page = 0  # every PTE carries the PMD's dirty bit
