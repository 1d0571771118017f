"""``unbatched``: try_to_unmap_one() before 6.15 (read in Debian's linux-source 6.12.117,
mm/rmap.c and mm/huge_memory.c).

PTE-mapped: one PTE per walk step (page_vma_mapped_walk), each cleared and flushed on its own
(ptep_clear_flush, or ptep_get_and_clear + set_tlb_ubc_flush_pending when
should_defer_flush()), one dec_mm_counter() and one folio_remove_rmap_pte() per page, for every
kind. The first page discarded from a lazyfree folio that stays mapped queues it for deferred
split (split_deferred +1); a dirty PTE met later restores that PTE, sets the folio swap-backed
and aborts, leaving the pages already unmapped unmapped (outcome ``partial``).

PMD-mapped lazyfree: shrink_folio_list() passes TTU_SPLIT_HUGE_PMD and try_to_unmap_one()
splits the PMD (split_huge_pmd_locked, thp_split_pmd +1) and walks the 512 PTEs as above. That
is 6.12.117 and later 6.12.y, and every kernel before 6.11: 735ecdfaf4e8 (v6.11, "avoid split
lazyfree THP during shrink_folio_list()") made try_to_unmap_one() call unmap_huge_pmd_locked()
first, which discards a clean lazyfree PMD whole (a dirty one still falls through to the
split), and 6.12.117 took that call out again (stable "mm/rmap: don't discard lazyfree THPs at
PMD level", Debian changelog 6.12.117-1; 6.12.116 source has the call, 6.12.117 and 6.12.118
do not). The kernel agrees: fixtures/bundles/{x86_64,aarch64,riscv64}/6.12.117*/pmd-clean show
thp_split_pmd +64, split_deferred (2048 kB) +64 and 32768 single-page rss_stat steps for 64
clean lazyfree THPs. ``unmap(state, pmd_discard=True)`` is the 6.11 .. 6.12.116 / 6.13 / 6.14
variant; other kinds take the shared PMD path (walk.pmd_mapped_other).
"""

from __future__ import annotations

from folio_replay.replay.folio import FolioState, UnmapResult
from folio_replay.replay.models.walk import Walk, per_pte, pmd_mapped_other


def unmap(state: FolioState, pmd_discard: bool = False) -> UnmapResult:
    """What a pre-6.15 kernel does to ``state``; ``pmd_discard``: the kernel calls
    unmap_huge_pmd_locked() before splitting (6.11 .. 6.12.116, 6.13, 6.14)."""
    walk = Walk(state)
    if state.swap_fallback:
        return walk.swap_split()
    if state.pmd_mapped:
        other = pmd_mapped_other(walk)
        if other is not None:
            return other
        if pmd_discard and state.dirty_page is None:
            return walk.discard_pmd()
        walk.split_pmd()
    return walk.walk_ptes(per_pte)
