"""Facts from earlier segments of a trace that the rows carried into the next segment do not
show (:mod:`.segments`): folios are keyed by their allocation line, the trace's own line
number."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Prior"]


@dataclass
class Prior:
    """What earlier segments established; empty for a whole trace or its first segment."""

    carried: int = 0  # rows at the head of the segment carried from earlier ones
    kept: set[int] = field(default_factory=set)  # kept (redirtied) since their last MADV_FREE
    cut: set[int] = field(default_factory=set)  # a genuine partial unmap already cut them
    # callers whose calls cut folios the trace cannot name (no fault addresses)
    unnamed_cuts: set[int] = field(default_factory=set)
    lazy_processes: set[int] = field(default_factory=set)  # processes that called MADV_FREE
    unnamed_pmd_kept: bool = False  # an earlier episode kept unnamed PMD-sized folios
    user_pfns: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # live user pages
    traced_pfns: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # live, any
    folio_ids: dict[int, int] = field(default_factory=dict)  # alloc line -> folio number
    munmap_edges: dict[int, set[int]] = field(default_factory=dict)  # pid -> mapping edges
    folios: int = 0  # folio numbers given so far
    # trace lines of the syscall enters carried while their calls were still open (a thread
    # blocked in the call): the calls are reported by the segment that sees them end
    open_calls: set[int] = field(default_factory=set)
    episodes: int = 0  # episode numbers given so far
