"""Numbers as people read them: times with units, speedups, folio sizes, bounds."""

from __future__ import annotations

import math

__all__ = ["bounds", "duration", "duration_range", "percent", "size", "speedup"]

_UNITS = ((1e9, "s"), (1e6, "ms"), (1e3, "µs"), (1.0, "ns"))


def _unit(ns: float) -> tuple[float, str]:
    return next(((scale, unit) for scale, unit in _UNITS if abs(ns) >= scale), (1.0, "ns"))


def _digits(value: float) -> str:
    """Three significant digits (all of the whole part: ``1234``, ``18.3``, ``4.64``)."""
    if value == 0:
        return "0"
    return f"{value:.{max(0, 2 - math.floor(math.log10(abs(value))))}f}"


def duration(ns: float | None) -> str:
    """``18.3 ms``, ``4.64 µs``, ``-`` when unknown."""
    if ns is None or (isinstance(ns, float) and math.isnan(ns)):
        return "-"
    scale, unit = _unit(ns)
    return f"{_digits(ns / scale)} {unit}"


def duration_range(low: float, high: float) -> str:
    """``18.3 ms``, or ``12.1–13.0 ms`` when the bounds differ (in the high bound's unit)."""
    if math.isclose(low, high):
        return duration((low + high) / 2)
    scale, unit = _unit(high)
    return f"{_digits(low / scale)}–{_digits(high / scale)} {unit}"


def speedup(ratio: float | None) -> str:
    """``1.45×``; ``-`` when unknown."""
    if ratio is None or math.isnan(ratio) or math.isinf(ratio):
        return "-"
    return f"{ratio:.2f}×"


def percent(fraction: float | None) -> str:
    """``-72.4%``; ``-`` when unknown."""
    if fraction is None or math.isnan(fraction):
        return "-"
    return f"{fraction:+.1%}"


def size(size_kb: float) -> str:
    """A folio size as the kernel's mTHP directories name it: ``64K``, ``2048K``."""
    return f"{int(size_kb)}K"


def bounds(low: float, high: float) -> str:
    """``2048`` or ``2040–2048``."""
    return f"{int(low)}" if low == high else f"{int(low)}–{int(high)}"
