"""``batched-file``: try_to_unmap_one() of 7.0 .. 7.3.1 (a67fe41e214f "mm: rmap: support
batched unmapping for file large folios", v7.0; read in Debian's linux-source 7.0.13, 7.1.13,
7.2.6 and 7.2.13, mm/rmap.c folio_unmap_pte_batch()).

folio_unmap_pte_batch() batches lazyfree anonymous, page-cache and shmem folios ("if
(folio_test_anon(folio) && folio_test_swapbacked(folio)) return 1;"), capped at
pmd_addr_end(addr, vma->vm_end) as since 6.16; a file batch is one
add_mm_counter(mm_counter_file(folio), -nr) (one rss_stat event) and one flush of the range.
29f40594a281 (v7.0) also stops a batch where the writable or soft-dirty bit changes, which the
models' states never have; 7.0 .. 7.2 do not batch a VMA with userfaultfd write-protect armed.
Swap-backed anonymous folios: one PTE per step.

PMD-mapped lazyfree: discarded whole at PMD level (folio_test_lazyfree -> unmap_huge_pmd_locked,
no split; dirty: set swap-backed and kept); PMD-mapped file/shmem: zapped (thp_split_pmd +1).
"""

from __future__ import annotations

from folio_replay.replay.folio import FolioState, UnmapResult
from folio_replay.replay.models.walk import Walk, pmd_mapped_other, pte_mapped

BATCHED = ("lazyfree", "file", "shmem")


def unmap(state: FolioState) -> UnmapResult:
    """What a 7.0 .. 7.3.1 kernel does to ``state``."""
    if state.pmd_mapped:
        walk = Walk(state)
        return pmd_mapped_other(walk) or walk.discard_pmd()
    return pte_mapped(state, batched=BATCHED)
