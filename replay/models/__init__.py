"""The unmap models: one registry, :data:`MODELS`, name -> :class:`Model`.

Each model is try_to_unmap_one() (mm/rmap.c) of one kernel era, step by step (:mod:`.walk`),
for every folio kind (lazyfree, swap-backed, file, shmem): ``unbatched`` before 6.15 (and
``unbatched-pmd-discard``, its 6.11 .. 6.12.116 / 6.13 / 6.14 variant that discards a clean
lazyfree PMD THP whole), ``batched`` 6.15.0-6.15.6 (all-or-nothing lazyfree batches),
``batched-partial`` 6.15.7+ / 6.16 .. 6.18.19, 6.19.0 .. 6.19.9 (lazyfree batches capped at
page-table and VMA ends), ``batched-partial-respect-write`` 6.18.20 .. 6.18.43, 6.19.10+ (the
same batches also end where the PTEs' write bits change: 29f40594a281, in every later model),
``batched-partial-pmd-split`` 6.18.y with the stable PMD fix (lazyfree PMD THPs split, then
batched),
``batched-file`` 7.0 .. 7.3.1 (file and shmem folios batched too) and
``batched-file-pmd-split`` 7.3.2+ (lazyfree PMD THPs split, then batched). What-if models no
kernel has are ``hypothetical``. :mod:`folio_replay.replay.releases` picks the model a kernel
release runs; the trace has the last word (:mod:`folio_replay.replay.recognise`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache, partial

from folio_replay.replay.folio import FolioState, UnmapResult
from folio_replay.replay.models import (
    batched,
    batched_file,
    batched_file_pmd_split,
    batched_partial,
    batched_partial_pmd_split,
    unbatched,
)

__all__ = ["MODELS", "Model", "unmap"]


@dataclass(frozen=True)
class Model:
    """One kernel era's unmap: ``run`` turns a :class:`FolioState` into an
    :class:`UnmapResult`; ``kernels`` says which releases run it; a ``hypothetical`` model is
    one no kernel has (a what-if), marked as such in every output; models not ``default`` are
    replayed only when asked for (or when the captured kernel runs them); a model that
    ``respects_write`` batches only PTEs with the same write and soft-dirty bits (29f40594a281
    "mm/rmap: fix incorrect pte restoration for lazyfree folios": ``folio_unmap_pte_batch()``
    with ``FPB_RESPECT_WRITE | FPB_RESPECT_SOFT_DIRTY``), the others ignore those bits, so a
    folio's ``run_starts`` are dropped before they run."""

    name: str
    run: Callable[[FolioState], UnmapResult]
    kernels: str
    hypothetical: bool = False
    default: bool = True
    respects_write: bool = False


MODELS: dict[str, Model] = {
    model.name: model
    for model in (
        Model("unbatched", unbatched.unmap, "before 6.15 (6.12.117+ and before 6.11: PMD split)"),
        Model(
            "unbatched-pmd-discard",
            partial(unbatched.unmap, pmd_discard=True),
            "6.11 .. 6.12.116, 6.13, 6.14 (735ecdfaf4e8: clean lazyfree PMD discarded whole)",
            default=False,
        ),
        Model("batched", batched.unmap, "6.15.0 .. 6.15.6 (354dffd29575)"),
        Model(
            "batched-partial",
            batched_partial.unmap,
            "6.15.7+, 6.16, 6.17, 6.18.0 .. 6.18.19, 6.19.0 .. 6.19.9 (ddd05742b45b)",
        ),
        Model(
            "batched-partial-respect-write",
            batched_partial.unmap,
            '6.18.20 .. 6.18.43, 6.19.10+ (29f40594a281 "mm/rmap: fix incorrect pte restoration'
            ' for lazyfree folios")',
            default=False,
            respects_write=True,
        ),
        Model(
            "batched-partial-pmd-split",
            batched_partial_pmd_split.unmap,
            '6.18.y with 984c0700854e "mm/rmap: don\'t discard lazyfree THPs at PMD level"'
            " (6.18.44)",
            default=False,
            respects_write=True,
        ),
        Model(
            "batched-file",
            batched_file.unmap,
            "7.0 .. 7.3.1 (a67fe41e214f)",
            respects_write=True,
        ),
        Model(
            "batched-file-pmd-split",
            batched_file_pmd_split.unmap,
            '7.3.2+ (984c0700854e "mm/rmap: don\'t discard lazyfree THPs at PMD level")',
            respects_write=True,
        ),
        Model(
            "whatif-batched-swapbacked",
            partial(batched_file_pmd_split.unmap, batched=(*batched_file.BATCHED, "swapbacked")),
            "no kernel: 7.3.2+ with swap-backed anonymous folios batched too",
            hypothetical=True,
            respects_write=True,
        ),
    )
}


def unmap(model: str, state: FolioState) -> UnmapResult:
    """What ``model`` does to ``state`` (models are pure functions of the state: cached).
    The result is shared between callers: do not modify it."""
    if state.run_starts and not MODELS[model].respects_write:
        state = replace(state, run_starts=())
    return _run(model, state)


@cache
def _run(model: str, state: FolioState) -> UnmapResult:
    """``MODELS[model].run(state)``, once per model and state."""
    return MODELS[model].run(state)
