"""Reconstruct reclaim from parsed traces and replay it through unmap models.

:func:`analyse` runs one bundle end to end and returns an :class:`Analysis`. Subpackages:
:mod:`.reconstruct` (episodes, lazyfree calls, the folio ledger, partial unmaps, per-folio
unmap records), :mod:`.models` (the kernels' unmap algorithms), :mod:`.costs` (per-arch cost
tables); :mod:`.releases` maps kernel releases to models, :mod:`.recognise` checks that against
the trace, :mod:`.predict` replays, :mod:`.validate` compares with the kernel's counters,
:mod:`.report` writes the Parquet report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Analysis", "analyse"]

if TYPE_CHECKING:
    from folio_replay.replay.analysis import Analysis, analyse


def __getattr__(name: str) -> Any:
    """Import :mod:`.analysis` on first use of a public name."""
    if name in __all__:
        from folio_replay.replay import analysis

        return getattr(analysis, name)
    raise AttributeError(f"module 'folio_replay.replay' has no attribute {name!r}")
