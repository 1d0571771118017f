"""``batched-partial``: try_to_unmap_one() of 6.16 .. 6.18.43, 6.19 and 6.15.7+ (ddd05742b45b
"mm/rmap: fix potential out-of-bounds page table access during batched unmap", stable
510fe9c15d07; read in Debian's linux-source 6.18.3, mm/rmap.c folio_unmap_pte_batch()).

PTE-mapped lazyfree: each walk step batches from its PTE to the end of the folio's present,
consecutive PTEs, capped at pmd_addr_end(addr, vma->vm_end) (the page table or the VMA ends
there): any size from 1 page up. A folio whose PTEs cross a page table is unmapped in two
batches: the first leaves it partially mapped, so deferred split counts it (split_deferred +1)
as the old code did; a dirty PTE in a batch restores that batch only. Every other kind: one PTE
per step ("if (!folio_test_anon(folio) || folio_test_swapbacked(folio)) return 1;").

``batched-partial-respect-write`` (6.18.20 .. 6.18.43, 6.19.10+: 29f40594a281 "mm/rmap: fix
incorrect pte restoration for lazyfree folios") is this walk with each batch also ending where
the PTEs' write or soft-dirty bits change (``FolioState.run_starts``; ``folio_pte_batch_flags()``
with ``FPB_RESPECT_WRITE | FPB_RESPECT_SOFT_DIRTY``, Debian's 6.19.10 source against 6.19.8).

PMD-mapped lazyfree: as in 6.15 (unmap_huge_pmd_locked, no split). 6.18.y with 984c0700854e
"don't discard lazyfree THPs at PMD level" (6.18.44) splits it: ``batched-partial-pmd-split``.
"""

from __future__ import annotations

from folio_replay.replay.folio import FolioState, UnmapResult
from folio_replay.replay.models.walk import Walk, pmd_mapped_other, pte_mapped


def unmap(state: FolioState) -> UnmapResult:
    """What a 6.16+ (or 6.15.7+) kernel before 7.0 without the PMD fix does to ``state``."""
    if state.pmd_mapped:
        walk = Walk(state)
        return pmd_mapped_other(walk) or walk.discard_pmd()
    return pte_mapped(state, batched=("lazyfree",))
