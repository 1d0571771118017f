"""The unmap models: name -> callable ``(FolioState) -> UnmapResult``.

Each model is try_to_unmap_one() of one kernel era, step by step (``folio_replay.replay.models.walk``):
``unbatched`` before 6.15, ``batched`` 6.15.0-6.15.6 (all-or-nothing batches), and
``batched-partial`` 6.16+ / 6.15.7+ (batches capped at page-table and VMA ends).
``folio_replay.replay.releases.model_for_release()`` picks the one a kernel runs.
"""

from __future__ import annotations

from collections.abc import Callable

from folio_replay.replay.folio import FolioState, UnmapResult
from folio_replay.replay.models import batched, batched_partial, unbatched

MODELS: dict[str, Callable[[FolioState], UnmapResult]] = {
    "unbatched": unbatched.unmap,
    "batched": batched.unmap,
    "batched-partial": batched_partial.unmap,
}
