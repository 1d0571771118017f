"""``batched-partial-pmd-split``: try_to_unmap_one() of 6.18.y with 984c0700854e "mm/rmap:
don't discard lazyfree THPs at PMD level" (the fix of 7.3.2 and 6.12.117, see
``batched_file_pmd_split``; Debian's linux-source 6.18.3 does not have it).

Which 6.18.y first carries it is not known: this machine's 6.18.44 does. There a clean
lazyfree PMD THP reclaimed by MADV_PAGEOUT goes through split_huge_pmd_locked() and is then
unmapped as one 512-PTE lazyfree batch. The evidence is:

- the trace: thp_split_pmd +1, two full flushes and one rss_stat step of -512 per THP;
- perf callchains: try_to_unmap_one -> __split_huge_pmd_locked, and never
  unmap_huge_pmd_locked.

PTE-mapped folios are handled as in ``batched-partial-respect-write`` (lazyfree batches only,
capped at page-table and VMA ends and at changes of the PTEs' write bits: 29f40594a281, in
6.18.y since 6.18.20; this machine's 6.18.44 shows it, ``cow-after-fork``). PMD-mapped
lazyfree THPs are split, then batched, and a dirty one has its 512 PTEs restored and is kept,
as in ``batched-file-pmd-split``.
"""

from __future__ import annotations

from folio_replay.replay.folio import FolioState, UnmapResult
from folio_replay.replay.models import batched_file_pmd_split

BATCHED = ("lazyfree",)


def unmap(state: FolioState) -> UnmapResult:
    """What a 6.18.y kernel with the stable PMD fix does to ``state``."""
    return batched_file_pmd_split.unmap(state, batched=BATCHED)
