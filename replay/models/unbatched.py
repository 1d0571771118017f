"""``unbatched``: try_to_unmap_one() before 6.15 (read in Debian's linux-source 6.12.117,
mm/rmap.c and mm/huge_memory.c).

PTE-mapped: one PTE per walk step (page_vma_mapped_walk), each cleared and flushed on its own
(ptep_clear_flush, or ptep_get_and_clear + set_tlb_ubc_flush_pending when
should_defer_flush()), one dec_mm_counter() and one folio_remove_rmap_pte() per page. The first
page discarded from a folio that stays mapped queues it for deferred split (split_deferred +1);
a dirty PTE met later restores that PTE, sets the folio swap-backed and aborts, leaving the
pages already unmapped unmapped (outcome ``partial``).

PMD-mapped: shrink_folio_list() passes TTU_SPLIT_HUGE_PMD and this try_to_unmap_one() splits
the PMD (split_huge_pmd_locked, thp_split_pmd +1) and walks the 512 PTEs as above. Upstream
735ecdfaf4e8 (6.11, "avoid split lazyfree THP during shrink_folio_list()") calls
unmap_huge_pmd_locked() first to discard a clean lazyfree PMD whole; the 6.12.117 source read
here defines it (mm/huge_memory.c) but try_to_unmap_one() does not call it, so the split path
is modelled, and the kernel agrees: fixtures/bundles/{x86_64,aarch64,riscv64}/6.12.117*/pmd-clean
show thp_split_pmd +64, split_deferred (2048 kB) +64 and 32768 single-page rss_stat steps for
64 clean lazyfree THPs, where the upstream discard would show none of them.
"""

from __future__ import annotations

from replay.folio import FolioState, UnmapResult
from replay.models.walk import Walk


def unmap(state: FolioState) -> UnmapResult:
    """What the pre-6.15 kernel does to ``state``."""
    walk = Walk(state)
    if state.pmd_mapped:
        walk.split_pmd()
    return walk.walk_ptes(lambda page: 1)
