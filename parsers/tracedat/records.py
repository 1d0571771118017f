"""Checks of ring-buffer records before they are rendered (the compiled loop
:func:`.kernels.check_records`): every record holds the common fields (``struct trace_entry``:
type, flags, preempt_count, pid), has a type the file has a format for, is as long as that
format, and names a pid within pid_max.

A record that fails is an error naming its byte offset in the file (for compressed data: the
CPU's data block, and the record's place in its decompressed bytes).
"""

from __future__ import annotations

from typing import NoReturn

import numpy as np
from folio_replay.parsers.limits import PID_MAX
from folio_replay.parsers.tracedat.event_formats import FormatTable
from folio_replay.parsers.tracedat.kernels import (
    BAD_PID,
    NEW_TYPE_CHECK,
    SHORT,
    SHORTER_THAN_FORMAT,
    TYPE_IDS,
    check_records,
    common_types,
)

from folio_replay.errors import InputError

__all__ = ["COMMON_BYTES", "RecordCheck"]

COMMON_BYTES = 8  # include/linux/trace_events.h struct trace_entry
UNKNOWN = -1  # a type whose format is not looked up yet


class RecordCheck:
    """Checks the records of one trace.dat batch after batch (formats looked up once)."""

    def __init__(self, path: str, formats: FormatTable) -> None:
        self.path = path
        self.formats = formats
        self.min_length = np.full(TYPE_IDS, UNKNOWN, np.int64)

    def check(
        self,
        data: np.ndarray,
        payload: np.ndarray,
        length: np.ndarray,
        file_offset: int,
        base: int,
        mapped: bool,
    ) -> None:
        """Check the records whose payloads start at ``payload`` in ``data``: bytes ``base``
        on of a CPU's pages, which are the file's at ``file_offset`` (``mapped``) or were
        decompressed from the data block there."""
        start = 0
        while True:
            what, i = check_records(data, payload, length, start, self.min_length, PID_MAX)
            if what == 0:
                return
            p = int(payload[i])
            kind = int(common_types(data, payload[i : i + 1])[0])
            fmt = self.formats.get(kind) if what in (NEW_TYPE_CHECK, SHORTER_THAN_FORMAT) else None
            if what == NEW_TYPE_CHECK and fmt is not None:
                self.min_length[kind] = max(fmt.record_size, COMMON_BYTES)
                start = i
                continue
            at = p
            if what == NEW_TYPE_CHECK:
                message = f"record of unknown event type {kind} (no format in file)"
            elif what == SHORT:
                message = f"record of {int(length[i])} bytes, shorter than the common fields"
            elif what == BAD_PID:
                pid = int.from_bytes(bytes(data[p + 4 : p + 8]), "little", signed=True)
                message = f"record with pid {pid} (outside 0..{PID_MAX})"
                at = p + 4
            else:
                message = (
                    f"{fmt.name if fmt else kind} record of {int(length[i])} bytes, shorter "
                    f"than its format ({int(self.min_length[kind])})"
                )
            self._fail(base + at, message, file_offset, mapped)

    def _fail(self, at: int, message: str, file_offset: int, mapped: bool) -> NoReturn:
        if mapped:
            raise InputError(self.path, message, offset=file_offset + at)
        raise InputError(
            self.path, f"{message} (byte {at:#x} of the decompressed data)", offset=file_offset
        )
