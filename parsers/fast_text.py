"""The fast text parser: a chunk of tracefs / trace-cmd report / perf script text into the event
table, giving exactly the rows of the reference parser (:mod:`parsers.text`).

A compiled scanner (:mod:`parsers.fast_kernels`) finds in one pass over each line its comm,
pid, CPU, timestamp, event name and field text, accepting only the shapes the reference
regular expressions accept.  A line that does not fit (a lost-events marker, a tracefs syscall
line ``sys_madvise(...)``, a ``(tgid)`` column, an odd comm, a malformed line) is parsed by the
reference code itself, so results and errors stay the reference's; so are rows whose typed
fields the fast reader leaves (:mod:`parsers.fast_fields`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from folio_replay.errors import InputError
from parsers import fast_kernels as fk
from parsers import textformats as tf
from parsers.fast_fields import strings, typed_columns
from parsers.schema import event_table_schema
from parsers.table import LostMarker
from parsers.text import parse_known

KERNEL_FORMAT = {tf.TRACEFS_TRACE: fk.TRACEFS, tf.TRACEFS_PIPE: fk.TRACEFS,
                 tf.TRACE_CMD_REPORT: fk.REPORT, tf.PERF_SCRIPT: fk.PERF}


@dataclass
class Chunk:
    """The rows a chunk gave: a table in line order, and its lost-event markers."""

    table: pa.Table
    lost: list[LostMarker]


def parse_chunk(path: str, buf: np.ndarray, nbytes: int, first_line: int, fmt: str,
                ends: np.ndarray | None = None) -> Chunk:
    """Parse ``buf[:nbytes]`` (whole lines; ``buf`` padded) whose first line is ``first_line``;
    ``ends``: the positions of its newlines, when known."""
    ends = np.flatnonzero(buf[:nbytes] == fk.NL) if ends is None else ends
    starts = np.empty_like(ends)
    starts[:1] = 0
    starts[1:] = ends[:-1] + 1
    cr = np.flatnonzero((ends > starts) & (buf[np.maximum(ends - 1, 0)] == fk.CR))
    if cr.size:   # the reference strips trailing CRs
        ends = ends.copy()
        ends[cr] = fk.strip_cr(buf, starts[cr], ends[cr])
    numbers = np.arange(first_line, first_line + starts.size, dtype=np.int64)
    kind, comm_s, comm_e, pid, cpu, ts, ev_s, ev_e, f_s = fk.scan_lines(
        buf, starts, ends, KERNEL_FORMAT[fmt])
    good = np.flatnonzero(kind == fk.EVENT)
    f_start, f_end = f_s[good], ends[good]
    fields = strings(buf, f_start, f_end)
    events = strings(buf, ev_s[good], ev_e[good])
    typed, bad_typed = typed_columns(buf, events, fields, f_start, f_end)
    cols = {
        "ts_ns": pa.array(ts[good]), "cpu": pa.array(cpu[good].astype(np.int32)),
        "pid": pa.array(pid[good].astype(np.int32)),
        "comm": strings(buf, comm_s[good], comm_e[good]),
        "event": events, "line": pa.array(numbers[good]), "fields": fields,
    }
    cols.update(typed)
    schema = event_table_schema()
    table = pa.table([cols[f.name] for f in schema], schema=schema)
    slow = np.flatnonzero(kind == fk.FALLBACK)
    if bad_typed.size:
        slow = np.sort(np.concatenate([slow, good[bad_typed]]))
        keep = np.ones(table.num_rows, bool)
        keep[bad_typed] = False
        table = table.filter(pa.array(keep))
    lost: list[LostMarker] = []
    if slow.size:
        slow_table, lost = _reference_lines(path, fmt, buf, starts[slow], ends[slow],
                                            numbers[slow])
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


def _reference_lines(path: str, fmt: str, buf: np.ndarray, starts: np.ndarray,
                     ends: np.ndarray, numbers: np.ndarray) -> tuple[pa.Table, list[LostMarker]]:
    """The lines the fast path left, parsed by the reference parser's own rules."""
    parsed = parse_known(path, fmt, _decoded_lines(path, buf, starts, ends, numbers))
    return parsed.table, parsed.lost


def _decoded_lines(path: str, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                   numbers: np.ndarray) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of the given byte ranges of the buffer."""
    for start, end, number in zip(starts.tolist(), ends.tolist(), numbers.tolist()):
        try:
            text = bytes(buf[start:end]).decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            raise InputError(path, "not UTF-8 text (binary data?)", line=number) from None
        yield number, text
