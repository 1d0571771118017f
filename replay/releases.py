"""Kernel release -> the unmap model it runs, from the data file ``releases.toml``.

Each range there names the change that starts it (commit, title, first mainline and stable
releases, the source read to check it). A vendor kernel may carry a backport under an older
number: the trace has the last word (:mod:`folio_replay.replay.recognise`), these ranges are
only what to expect when the trace cannot decide.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

__all__ = [
    "ReleaseRange",
    "model_for_release",
    "parse_release",
    "range_for_release",
    "release_distance",
    "release_ranges",
]

RELEASES_TOML = Path(__file__).with_name("releases.toml")
_RELEASE = re.compile(r"(?:Linux version\s+)?(\d+)(?:\.(\d+))?(?:\.(\d+))?")


def parse_release(release: str) -> tuple[int, int, int]:
    """(major, minor, patch) of a ``uname -r`` string or a ``/proc/version`` line, e.g.
    ``6.12.117+deb13-cloud-amd64`` -> (6, 12, 117); ``7.2-rc1`` -> (7, 2, 0)."""
    match = _RELEASE.match(release.strip())
    if not match:
        raise ValueError(f"not a kernel release: {release!r}")
    major, minor, patch = match.groups()
    return int(major), int(minor or 0), int(patch or 0)


@dataclass(frozen=True)
class ReleaseRange:
    """Releases in [first, until) run ``model``, since the change named here."""

    model: str
    first: tuple[int, int, int]
    until: tuple[int, int, int] | None
    commit: str
    title: str
    first_mainline: str
    first_stable: dict[str, str]
    checked_in: str

    def holds(self, version: tuple[int, int, int]) -> bool:
        """Whether ``version`` lies in this range."""
        return self.first <= version and (self.until is None or version < self.until)

    @property
    def citation(self) -> str:
        """The change, as the report and README cite it."""
        stable = ", ".join(self.first_stable.values())
        return (
            f'{self.commit} "{self.title}" (mainline {self.first_mainline or "-"}'
            + (f"; stable {stable}" if stable else "")
            + ")"
        )


@cache
def release_ranges() -> tuple[ReleaseRange, ...]:
    """The ranges of ``releases.toml``, newest first."""
    with RELEASES_TOML.open("rb") as fh:
        data = tomllib.load(fh)
    return tuple(
        ReleaseRange(
            entry["model"],
            parse_release(entry["from"]),
            parse_release(entry["until"]) if "until" in entry else None,
            entry["commit"],
            entry["title"],
            entry["first_mainline"],
            dict(entry["first_stable"]),
            entry["checked_in"],
        )
        for entry in data["range"]
    )


def _ordinal(version: tuple[int, int, int]) -> int:
    """A version as one number: releases a few patches apart are near, other series far."""
    major, minor, patch = version
    return (major * 1000 + minor) * 100_000 + patch


def release_distance(model: str, release: str) -> int:
    """How far ``release`` lies from the nearest release that runs ``model`` (0: it does).
    When a trace contradicts its release's model and several models fit it, the nearest is
    the likelier kernel (a backport or revert moves a kernel to a neighbouring behaviour)."""
    version = _ordinal(parse_release(release))
    bounds = sorted({b for r in release_ranges() for b in (r.first, r.until) if b is not None})
    distances = []
    for i, low in enumerate(bounds):  # stretches between bounds; the first range holding wins
        holding = _range_holding(low)
        if holding is None or holding.model != model:
            continue
        first = _ordinal(low)
        last = _ordinal(bounds[i + 1]) - 1 if i + 1 < len(bounds) else None
        distances.append(max(0, first - version) + (0 if last is None else max(0, version - last)))
    if not distances:
        raise ValueError(f"releases.toml has no release of model {model!r}")
    return min(distances)


def _range_holding(version: tuple[int, int, int]) -> ReleaseRange | None:
    """The first range (newest first) that holds ``version``."""
    return next((entry for entry in release_ranges() if entry.holds(version)), None)


def range_for_release(release: str) -> ReleaseRange:
    """The range (and so the model) of a kernel release."""
    entry = _range_holding(parse_release(release))
    if entry is None:
        raise ValueError(f"releases.toml covers no range holding {release!r}")
    return entry


def model_for_release(release: str) -> str:
    """The model name a kernel release runs by its number (before the trace is heard)."""
    return range_for_release(release).model
