"""The distinct event names of a text trace, numbered in order of first appearance, for the
fast scanner (:func:`folio_replay.parsers.text.scan.scan_events`), which looks names up in it;
names are added here, between scans (a trace has few).

The scanner looks a tracefs syscall line up by its name and the bytes that tell enter from exit
(``sys_madvise(`` and ``sys_madvise ->``); the event is named as the reference names it
(``sys_enter_madvise``, ``sys_exit_madvise``: events.toml ``syscall_enter_prefix`` and
``syscall_exit_prefix``).
"""

from __future__ import annotations

import numpy as np
from folio_replay.parsers.schema import event_schema
from folio_replay.parsers.text import scan
from folio_replay.parsers.text.typed import group_index

SLACK = 8  # bytes after the names: the scanner reads names eight bytes at a time


class EventNames:
    """Names as the scanner finds them (bytes and offsets), the words it compares, an
    open-addressing hash table of their codes, the event name of each (``events``,
    ``event_offsets``) and its typed-column group."""

    def __init__(self) -> None:
        self.count = 0
        self.names = np.zeros(256 + SLACK, np.uint8)
        self.offsets = np.zeros(1, np.int64)
        self.firsts = np.zeros(0, np.uint64)
        self.lasts = np.zeros(0, np.uint64)
        self.slots = np.full(64, -1, np.int32)
        self.groups = np.zeros(0, np.int64)
        self.events = np.zeros(SLACK, np.uint8)
        self.event_offsets = np.zeros(1, np.int64)

    def add(self, name: bytes) -> None:
        """Give ``name`` (as the scanner found it) the next code."""
        event = _event_name(name)
        used = int(self.event_offsets[-1])
        self.events = np.concatenate(
            [self.events[:used], np.frombuffer(event, np.uint8), np.zeros(SLACK, np.uint8)]
        )
        self.event_offsets = np.append(self.event_offsets, used + len(event))
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
        self.groups = np.append(self.groups, group_index(event.decode()))
        self.count += 1
        size = self.slots.size * 2 if 2 * self.count > self.slots.size else self.slots.size
        self.slots = scan.rehash(self.names, self.offsets, self.count, size)


def _event_name(name: bytes) -> bytes:
    """The event name of a name the scanner found: a syscall's ``sys_NAME(`` and
    ``sys_NAME ->`` become ``sys_enter_NAME`` and ``sys_exit_NAME``."""
    syntax = event_schema()
    if name.endswith(b"("):
        return syntax.syscall_enter_prefix.encode() + name[4:-1]
    if name.endswith(b" ->"):
        return syntax.syscall_exit_prefix.encode() + name[4:-3]
    return name
