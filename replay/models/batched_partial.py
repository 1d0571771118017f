"""``batched-partial``: try_to_unmap_one() of 6.16+ and 6.15.7+ (ddd05742b45b "mm/rmap: fix
potential out-of-bounds page table access during batched unmap", stable 510fe9c15d07; read in
Debian's linux-source 7.2.13, mm/rmap.c folio_unmap_pte_batch()).

PTE-mapped: each walk step batches from its PTE to the end of the folio's present, consecutive
PTEs, capped at pmd_addr_end(addr, vma->vm_end) (the page table or the VMA ends there): any
size from 1 page up. folio_pte_batch() ignores dirty bits (6.16) and, from 7.0 (29f40594a281
"fix incorrect pte restoration for lazyfree folios"), stops at a change of the writable or
soft-dirty bit, which the models' states never have. A folio whose PTEs cross a page table
is unmapped in two batches: the first leaves it partially mapped, so deferred split counts it
(split_deferred +1) as the old code did; a dirty PTE in a batch restores that batch only.

PMD-mapped: as in 6.15 (unmap_huge_pmd_locked, no split; 7.2 keeps it behind
folio_test_lazyfree()).
"""

from __future__ import annotations

from folio_replay.replay.folio import FolioState, UnmapResult
from folio_replay.replay.models.walk import Walk


def batch_end(state: FolioState, page: int) -> int:
    """The page after the last one the batch starting at ``page`` covers."""
    if state.batch_limit is not None and page < state.batch_limit:
        return min(state.mapped, state.batch_limit)
    return state.mapped


def unmap(state: FolioState) -> UnmapResult:
    """What a 6.16+ (or 6.15.7+) kernel does to ``state``."""
    walk = Walk(state)
    if state.pmd_mapped:
        return walk.discard_pmd()
    return walk.walk_ptes(lambda page: batch_end(state, page) - page)
