"""``batched-file-pmd-split``: try_to_unmap_one() of 7.3.2+ (984c0700854e "mm/rmap: don't
discard lazyfree THPs at PMD level", Debian changelog linux 7.3.3-1 under ChangeLog-7.3.2; read in
Debian's linux-source 7.3.4: try_to_unmap_one() no longer calls unmap_huge_pmd_locked()).

As ``batched-file`` for PTE-mapped folios. A PMD-mapped lazyfree THP is split first
(split_huge_pmd_locked with TTU_SPLIT_HUGE_PMD: thp_split_pmd +1, a PTE table built from the
PMD, every PTE carrying the PMD's dirty bit) and its 512 PTEs are then unmapped as one lazyfree
batch (ttu_anon_lazyfree_folio(): one add_mm_counter(MM_ANONPAGES, -512), one ranged flush, no
deferred split); a dirty one restores the 512 PTEs with set_ptes() and is set swap-backed: kept,
PTE-mapped. A swap-backed PMD THP is split and unmapped per PTE, as in every release.
"""

from __future__ import annotations

from folio_replay.replay.folio import FolioState, UnmapResult
from folio_replay.replay.models.batched_file import BATCHED
from folio_replay.replay.models.walk import Walk, capped_batch, per_pte, pte_mapped


def unmap(state: FolioState, batched: tuple[str, ...] = BATCHED) -> UnmapResult:
    """What a 7.3.2+ kernel does to ``state`` (``batched``: the kinds batched)."""
    if state.pmd_mapped:
        walk = Walk(state)
        if state.swap_fallback:
            return walk.swap_split()
        if state.kind in ("file", "shmem"):
            return walk.zap_file_pmd()
        walk.split_pmd()
        return walk.walk_ptes(capped_batch(state) if state.kind in batched else per_pte)
    return pte_mapped(state, batched=batched)
