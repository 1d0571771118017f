"""folio-replay: what batched unmap of large folios during reclaim changes for a workload.

The Python API (the command line is a thin shell over it)::

    import folio_replay
    trace = folio_replay.read_trace("trace.dat")       # Trace: .events, .df(event), ...
    bundle = folio_replay.load_bundle("BUNDLE_DIR")     # Bundle: meta, stats, trace file
    analysis = folio_replay.analyse(bundle)             # Analysis: episodes, folios, ...

The library lives in :mod:`folio_replay.parsers` (traces and counters in, typed tables out) and
:mod:`folio_replay.replay` (reconstruction, models, costs, validation, reports). Names are
loaded on first use, so ``import folio_replay`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from folio_replay.lazy import lazy_names

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "read_trace": "folio_replay.parsers.trace",
    "Trace": "folio_replay.parsers.table",
    "load_bundle": "folio_replay.parsers.bundle",
    "Bundle": "folio_replay.parsers.bundle",
    "analyse": "folio_replay.replay.analysis",
    "Analysis": "folio_replay.replay.analysis",
    "InputError": "folio_replay.errors",
}

__all__ = [
    "Analysis",
    "Bundle",
    "InputError",
    "Trace",
    "__version__",
    "analyse",
    "load_bundle",
    "read_trace",
]

if TYPE_CHECKING:
    from folio_replay.errors import InputError
    from folio_replay.parsers.bundle import Bundle, load_bundle
    from folio_replay.parsers.table import Trace
    from folio_replay.parsers.trace import read_trace
    from folio_replay.replay.analysis import Analysis, analyse


__getattr__ = lazy_names(globals(), _API)
