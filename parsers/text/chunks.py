"""The fast text parser: chunks of tracefs / trace-cmd report / perf script text into the event
table, giving exactly the rows of the reference parser (:mod:`folio_replay.parsers.text.reference`).

A compiled scanner (:func:`folio_replay.parsers.text.scan.scan_events`) finds in one pass over each
line its comm, pid, CPU, timestamp, event name (as a code into a table of the distinct names) and
field text, accepting only the shapes the reference regular expressions accept.  A line that
does not fit (a lost-events marker, a ``(tgid)``
column, an odd comm, a malformed line) is parsed by the reference code itself, so results and
errors stay the reference's; so are events whose typed fields the fast reader leaves
(:mod:`folio_replay.parsers.text.typed`).  Work arrays live as long as the parser, so that chunk
after chunk reuses memory instead of touching fresh pages.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from folio_replay.parsers._native.arrays import plain_array
from folio_replay.parsers._native.byteops import has_high
from folio_replay.parsers.schema import event_table_schema
from folio_replay.parsers.table import LostMarker
from folio_replay.parsers.text import dialects, scan, strings
from folio_replay.parsers.text.names import EventNames
from folio_replay.parsers.text.reference import parse_known
from folio_replay.parsers.text.typed import TypedReader

from folio_replay.errors import InputError

KERNEL_FORMAT = {
    dialects.TRACEFS_TRACE: scan.TRACEFS,
    dialects.TRACEFS_PIPE: scan.TRACEFS,
    dialects.TRACE_CMD_REPORT: scan.REPORT,
    dialects.PERF_SCRIPT: scan.PERF,
}


@dataclass
class Chunk:
    """The rows a chunk gave: a table in line order, and its lost-event markers."""

    table: pa.Table
    lost: list[LostMarker]


class ChunkParser:
    """Parses the chunks of one text trace in order, keeping the table of event names and the
    work arrays from chunk to chunk."""

    def __init__(self, path: str, fmt: str) -> None:
        self.path = path
        self.fmt = fmt
        self.names = EventNames()
        self.capacity = 0
        self.typed = TypedReader()
        self.schema = event_table_schema()

    def _reserve(self, lines: int) -> None:
        if lines <= self.capacity:
            return
        self.capacity = max(lines, 2 * self.capacity)
        self.rows = np.empty((6, self.capacity), np.int64)
        self.small = np.empty((3, self.capacity), np.int32)
        self.slow = np.empty(self.capacity, np.int64)

    def _scan(self, buf: np.ndarray, ends: np.ndarray, ascii_only: bool) -> tuple[int, int]:
        """Events and slow lines of the chunk into the work arrays; (events, slow lines)."""
        self._reserve(ends.size)
        line = ne = ns = 0
        names = self.names
        while True:
            line, ne, ns, start, end = scan.scan_events(
                buf,
                ends,
                KERNEL_FORMAT[self.fmt],
                ascii_only,
                line,
                ne,
                ns,
                names.names,
                names.offsets,
                names.firsts,
                names.lasts,
                names.slots,
                self.rows,
                self.small,
                self.slow,
            )
            if line == ends.size:
                return ne, ns
            names.add(bytes(buf[start:end]))

    def parse(
        self,
        buf: np.ndarray,
        nbytes: int,
        first_line: int,
        ends: np.ndarray | None = None,
        ascii_only: bool | None = None,
    ) -> Chunk:
        """Parse ``buf[:nbytes]`` (whole lines; ``buf`` padded) whose first line is
        ``first_line``; ``ends``: the positions of its newlines, ``ascii_only``: whether no
        byte is above 0x7f, when known."""
        if ends is None:
            ends = np.flatnonzero(buf[:nbytes] == scan.NL)
        if ascii_only is None:
            ascii_only = not has_high(buf, 0, nbytes)
        ne, ns = self._scan(buf, ends, ascii_only)
        rows, small = self.rows[:, :ne], self.small[:, :ne]
        codes = small[scan.CODE]
        typed, bad_typed = self.typed.read(
            buf, rows[scan.FIELDS_S], rows[scan.FIELDS_E], codes, self.names.groups
        )
        cols = {
            "ts_ns": plain_array(rows[scan.TS].copy(), pa.int64()),
            "cpu": plain_array(small[scan.CPU].copy(), pa.int32()),
            "pid": plain_array(small[scan.PID].copy(), pa.int32()),
            "comm": strings.ranges(buf, rows[scan.COMM_S], rows[scan.COMM_E]),
            "event": strings.decoded(self.names.events, self.names.event_offsets, codes),
            "line": plain_array(rows[scan.LINE] + first_line, pa.int64()),
            "fields": strings.ranges(buf, rows[scan.FIELDS_S], rows[scan.FIELDS_E]),
        }
        cols.update(typed)
        table = pa.table([cols[f.name] for f in self.schema], schema=self.schema)
        slow = self.slow[:ns]
        if bad_typed.size:
            slow = np.sort(np.concatenate([slow, rows[scan.LINE, bad_typed]]))
            keep = np.ones(table.num_rows, bool)
            keep[bad_typed] = False
            table = table.filter(pa.array(keep))
        lost: list[LostMarker] = []
        if slow.size:
            starts = np.where(slow > 0, ends[np.maximum(slow - 1, 0)] + 1, 0)
            slow_table, lost = _reference_lines(
                self.path, self.fmt, buf, starts, ends[slow], slow + first_line
            )
            table = _merge_by_line(table, slow_table)
        return Chunk(table, lost)


def _merge_by_line(fast: pa.Table, slow: pa.Table) -> pa.Table:
    """Both tables' rows in line order (each is in line order already).

    A few slow rows are spliced in between zero-copy slices of the fast rows; many are merged
    with one ``take``.
    """
    fast_lines = fast.column("line").to_numpy()
    slow_lines = slow.column("line").to_numpy()
    if slow.num_rows > 256:
        both = pa.concat_tables([fast, slow]).combine_chunks()
        order = np.argsort(np.concatenate([fast_lines, slow_lines]), kind="stable")
        return both.take(pa.array(order))
    cuts = np.searchsorted(fast_lines, slow_lines)
    pieces, prev = [], 0
    for i, cut in enumerate(cuts.tolist()):
        pieces.append(fast.slice(prev, cut - prev))
        pieces.append(slow.slice(i, 1))
        prev = cut
    pieces.append(fast.slice(prev))
    return pa.concat_tables(pieces)


def _reference_lines(
    path: str, fmt: str, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, numbers: np.ndarray
) -> tuple[pa.Table, list[LostMarker]]:
    """The lines the fast path left, parsed by the reference parser's own rules."""
    parsed = parse_known(path, fmt, _decoded_lines(path, buf, starts, ends, numbers))
    return parsed.table, parsed.lost


def _decoded_lines(
    path: str, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, numbers: np.ndarray
) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of the given byte ranges of the buffer."""
    for start, end, number in zip(starts.tolist(), ends.tolist(), numbers.tolist()):
        try:
            text = bytes(buf[start:end]).decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            raise InputError(path, "not UTF-8 text (binary data?)", line=number) from None
        yield number, text
