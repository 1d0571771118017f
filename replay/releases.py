"""Kernel version -> the unmap model it runs (``folio_replay.replay.models.MODELS``).

Boundaries (mainline merge, then stable backports):
- before 6.15: ``unbatched``, one PTE per step in try_to_unmap_one();
- 6.15.0 .. 6.15.6: ``batched``, 354dffd29575 ("mm: support batched unmap for lazyfree large
  folios during reclamation", v6.15-rc1) with its series (faeb2831b517, 2f4ab3ac10e1,
  2f9b43d617e2): the whole folio or one PTE at a time;
- 6.15.7+ and 6.16+: ``batched-partial``, ddd05742b45b ("mm/rmap: fix potential out-of-bounds
  page table access during batched unmap", v6.16-rc5; stable 510fe9c15d07 in 6.15.7,
  CVE-2025-38447 "affected >= 6.15.0 < 6.15.7"): folio_unmap_pte_batch() batches capped at
  page-table and VMA ends.
Within ``unbatched``, kernels 6.11 .. 6.12.116, 6.13 and 6.14 discard a clean lazyfree
PMD-mapped THP whole (735ecdfaf4e8, v6.11) where 6.12.117+ and pre-6.11 kernels split it:
:func:`discards_clean_pmd` says which (``folio_replay.replay.models.unbatched.unmap(...,
pmd_discard=)``).
A vendor kernel may carry a backport under an older number: where the trace shows batched
unmaps on a kernel this table calls ``unbatched``, the trace wins (``replay`` checks the
captured kernel's signatures against the model picked here).
"""

from __future__ import annotations

import re

BOUNDARIES: tuple[tuple[tuple[int, int, int], str], ...] = (
    ((6, 16, 0), "batched-partial"),  # ddd05742b45b, v6.16-rc5
    ((6, 15, 7), "batched-partial"),  # 510fe9c15d07, stable 6.15.7
    ((6, 15, 0), "batched"),  # 354dffd29575, v6.15-rc1
    ((0, 0, 0), "unbatched"),
)

_RELEASE = re.compile(r"(?:Linux version\s+)?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_release(release: str) -> tuple[int, int, int]:
    """(major, minor, patch) of a ``uname -r`` string or a ``/proc/version`` line, e.g.
    ``6.12.117+deb13-cloud-amd64`` -> (6, 12, 117); ``7.2-rc1`` -> (7, 2, 0)."""
    match = _RELEASE.match(release.strip())
    if not match:
        raise ValueError(f"not a kernel release: {release!r}")
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


PMD_DISCARD: tuple[tuple[tuple[int, int, int], tuple[int, int, int]], ...] = (
    ((6, 11, 0), (6, 12, 117)),  # 735ecdfaf4e8 (v6.11) until stable 6.12.117 took it out
    ((6, 13, 0), (6, 15, 0)),  # 6.15+: the batched models discard via the same call
)


def discards_clean_pmd(release: str) -> bool:
    """Whether an ``unbatched`` kernel discards clean lazyfree PMD THPs whole (no split)."""
    version = parse_release(release)
    return any(first <= version < end for first, end in PMD_DISCARD)


def model_for_release(release: str) -> str:
    """The model name (``unbatched``, ``batched``, ``batched-partial``) of a kernel release."""
    version = parse_release(release)
    for first, model in BOUNDARIES:
        if version >= first:
            return model
    raise AssertionError("BOUNDARIES ends with (0, 0, 0)")
