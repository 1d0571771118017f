"""``batched``: try_to_unmap_one() of 6.15 (354dffd29575 "support batched unmap for lazyfree
large folios during reclamation", with faeb2831b517 "set folio swapbacked iff folios are
dirty", 2f4ab3ac10e1 "support tlbbatch flush for a range of PTEs" and 2f9b43d617e2 "avoid
splitting pmd for lazyfree pmd-mapped THP"), until 6.15.6.

PTE-mapped lazyfree: can_batch_unmap_folio_ptes() batches the whole folio or nothing: only when
the walk starts at the folio's first page (pte_pfn(pte) == folio_pfn(folio)) and
folio_pte_batch() with max_nr = folio_nr_pages(folio) finds every PTE (FPB_IGNORE_DIRTY: dirty
bits do not break a batch). Then one get_and_clear_full_ptes() of all PTEs, one flush of the
range, and either one add_mm_counter(-nr) + folio_remove_rmap_ptes(nr) (discarded: no deferred
split) or, if any PTE was dirty, set_ptes() of all of them + swap-backed (kept). Otherwise (part
of the folio unmapped, or its PTEs crossing a page table or VMA end) it falls back to one PTE
per step as before 6.15. The batch is read past the page table when it crosses one: fixed in
6.16 by ddd05742b45b (see ``batched-partial``). Other kinds: one PTE per step.

PMD-mapped lazyfree: unmap_huge_pmd_locked() discards a clean PMD whole; a dirty PMD or folio is
set swap-backed and kept without a split (2f9b43d617e2).
"""

from __future__ import annotations

from folio_replay.replay.folio import FolioState, UnmapResult
from folio_replay.replay.models.walk import Walk, pmd_mapped_other


def unmap(state: FolioState) -> UnmapResult:
    """What a 6.15.0 .. 6.15.6 kernel does to ``state``."""
    walk = Walk(state)
    if state.swap_fallback:
        return walk.swap_split()
    if state.pmd_mapped:
        return pmd_mapped_other(walk) or walk.discard_pmd()
    whole = (
        state.kind == "lazyfree"
        and state.mapped == state.nr_pages
        and (state.batch_limit is None or state.batch_limit >= state.nr_pages)
    )
    return walk.walk_ptes(lambda page: state.nr_pages if whole and page == 0 else 1)
