"""Sane limits on sizes read from input files (``parsers/limits.toml``, each with its source).

A size beyond its limit is damage or a crafted file: the readers refuse it before allocating
anything from it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

__all__ = [
    "CPUS",
    "EVENTS_PER_SYSTEM",
    "EVENT_SYSTEMS",
    "META_JSON_BYTES",
    "PAGE_SIZE_MAX",
    "PID_MAX",
    "SECTION_BYTES",
    "STATS_FILE_BYTES",
]

with (Path(__file__).with_name("limits.toml")).open("rb") as _fh:
    _LIMITS = {name: int(entry["value"]) for name, entry in tomllib.load(_fh).items()}

PID_MAX: int = _LIMITS["pid_max"]
CPUS: int = _LIMITS["cpus"]
PAGE_SIZE_MAX: int = _LIMITS["page_size_max"]
EVENT_SYSTEMS: int = _LIMITS["event_systems"]
EVENTS_PER_SYSTEM: int = _LIMITS["events_per_system"]
SECTION_BYTES: int = _LIMITS["section_bytes"]
STATS_FILE_BYTES: int = _LIMITS["stats_file_bytes"]
META_JSON_BYTES: int = _LIMITS["meta_json_bytes"]
