"""The distinct event names of a text trace, numbered in order of first appearance, for the
fast scanner (:func:`folio_replay.parsers.text.scan.scan_events`), which looks names up in it;
names are added here, between scans (a trace has few).
"""

from __future__ import annotations

import numpy as np
from folio_replay.parsers.text import scan
from folio_replay.parsers.text.typed import group_index

SLACK = 8  # bytes after the names: the scanner reads names eight bytes at a time


class EventNames:
    """Names (bytes and offsets), the words the scanner compares, an open-addressing hash table
    of their codes, and the typed-column group of each."""

    def __init__(self) -> None:
        self.count = 0
        self.names = np.zeros(256 + SLACK, np.uint8)
        self.offsets = np.zeros(1, np.int64)
        self.firsts = np.zeros(0, np.uint64)
        self.lasts = np.zeros(0, np.uint64)
        self.slots = np.full(64, -1, np.int32)
        self.groups = np.zeros(0, np.int64)

    def add(self, name: bytes) -> None:
        """Give ``name`` the next code."""
        end = int(self.offsets[-1])
        if end + len(name) + SLACK > self.names.size:
            self.names = np.concatenate(
                [self.names, np.zeros(self.names.size + len(name), np.uint8)]
            )
        self.names[end : end + len(name)] = np.frombuffer(name, np.uint8)
        self.offsets = np.append(self.offsets, end + len(name))
        first, last = scan.name_words(self.names, end, end + len(name))
        self.firsts = np.append(self.firsts, np.uint64(first))
        self.lasts = np.append(self.lasts, np.uint64(last))
        self.groups = np.append(self.groups, group_index(name.decode()))
        self.count += 1
        size = self.slots.size * 2 if 2 * self.count > self.slots.size else self.slots.size
        self.slots = scan.rehash(self.names, self.offsets, self.count, size)
