"""The reference parser of text traces: tracefs ``trace``/``trace_pipe``, ``trace-cmd report``,
``perf script``. One regular expression per line; straightforward on purpose, so that faster
parsers can be tested against it.

Lossless: every event line becomes a row keeping its field text verbatim; lost-event markers
are collected; a line that is neither an event, a comment, a marker nor a trace-cmd header is an
error naming the file and line.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from folio_replay.parsers.files import regular_file
from folio_replay.parsers.schema import event_schema
from folio_replay.parsers.table import EventTableBuilder, LostMarker, Trace
from folio_replay.parsers.text import dialects
from folio_replay.parsers.text.fields import FieldError, read_group

from folio_replay.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
INT32_MAX = (1 << 31) - 1
INT64_MAX = (1 << 63) - 1
DETECT_LINES = 50  # non-comment lines looked at to tell the format
BINARY_PROBE = 4096  # leading bytes checked for NUL (binary data)
PERF_DATA_MAGIC = b"PERFILE2"  # tools/perf/util/header.c: a perf.data file's first bytes


def binary_data(head: bytes) -> str:
    """What a file with a NUL among its first bytes is said to be (``head``: its first
    bytes): a perf.data file is named, with the command that prints it as text."""
    if head.startswith(PERF_DATA_MAGIC):
        return "a perf.data file (binary): give the text `perf script -i FILE` prints"
    return "binary data, not a text trace"


def open_text(path: str | Path) -> io.BufferedIOBase:
    """The trace's bytes, decompressed when the file is gzip (``.gz`` or not)."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == GZIP_MAGIC else open(path, "rb")


def _lines(path: str, raw: io.BufferedIOBase) -> Iterator[tuple[int, str]]:
    """(line number, text without the newline); errors for binary data and truncation."""
    number = 0
    offset = 0
    head = b""
    try:
        for number, data in enumerate(raw, start=1):
            head = head or data
            if offset < BINARY_PROBE and b"\0" in data:
                raise InputError(path, binary_data(head), offset=offset + data.index(b"\0"))
            offset += len(data)
            if not data.endswith(b"\n"):
                raise InputError(
                    path, "truncated line (the file ends in the middle of a line)", line=number
                )
            try:
                yield number, data[:-1].decode("utf-8").rstrip("\r")
            except UnicodeDecodeError:
                raise InputError(path, "not UTF-8 text (binary data?)", line=number) from None
    except (EOFError, OSError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise InputError(
            path, f"truncated or corrupt compressed data ({err})", line=number + 1
        ) from None
    if number == 0:
        raise InputError(path, "empty file")


def _timestamp_ns(path: str, number: int, sec: str, frac: str) -> int:
    """Nanoseconds of a printed ``SECONDS.FRACTION`` timestamp (6 or 9 fraction digits); the
    column is int64, so a time beyond it is an error."""
    if len(frac) > 9 or len(sec) > 19:
        raise InputError(path, f"cannot parse timestamp {sec[:30]}.{frac[:30]}", line=number)
    ns = int(sec) * 1_000_000_000 + int(frac.ljust(9, "0"))
    if ns > INT64_MAX:
        raise InputError(path, f"timestamp {sec}.{frac} beyond 64 bits of nanoseconds", line=number)
    return ns


def _int32(path: str, number: int, what: str, digits: str) -> int:
    """A printed pid or CPU number (int32 columns); beyond it an error."""
    if len(digits) > 10 or int(digits) > INT32_MAX:
        raise InputError(path, f"{what} {digits[:30]} beyond 32 bits", line=number)
    return int(digits)


def _count(path: str, number: int, digits: str | None) -> int | None:
    """The count of a lost-events marker (None: not given); beyond int64 an error."""
    if digits is None:
        return None
    if len(digits) > 19 or int(digits) > INT64_MAX:
        raise InputError(path, f"lost-events count {digits[:30]} beyond 64 bits", line=number)
    return int(digits)


def _event_and_fields(fmt: str, body: str) -> tuple[str, str] | None:
    """(bare event name, field text) of a line's event part, or None."""
    match = dialects.EVENT_BODY.match(body)
    if match:
        return match["event"], match["fields"]
    if fmt in (dialects.TRACEFS_TRACE, dialects.TRACEFS_PIPE):
        syntax = event_schema()
        match = dialects.SYSCALL_ENTER_BODY.match(body)
        if match:
            return syntax.syscall_enter_prefix + match["name"], match["fields"]
        match = dialects.SYSCALL_EXIT_BODY.match(body)
        if match:
            return syntax.syscall_exit_prefix + match["name"], match["fields"]
    return None


def parse_lines(path: str, lines: Iterable[tuple[int, str]]) -> Trace:
    """Parse numbered text lines of one trace (see :func:`read_text`)."""
    lines = iter(lines)
    head: list[tuple[int, str]] = []
    body: list[str] = []  # the non-comment lines of head
    saw_tracer_header = False
    for number, text in lines:
        head.append((number, text))
        if dialects.is_comment(text):
            saw_tracer_header = saw_tracer_header or text.startswith("# tracer:")
        elif text:
            body.append(text)
            if len(body) >= DETECT_LINES:
                break
    if not head:
        raise InputError(path, "empty file")
    fmt = dialects.detect(body, saw_tracer_header)
    if fmt is None:
        if not body:  # only a header: a trace with no events (tracefs prints its header)
            if saw_tracer_header:
                return Trace(
                    EventTableBuilder().finish(path, dialects.TRACEFS_TRACE, []),
                    path,
                    dialects.TRACEFS_TRACE,
                    [],
                )
            raise InputError(path, "unknown format (no event lines)", line=head[-1][0])
        first, line = next((n, t) for n, t in head if t and not dialects.is_comment(t))
        raise InputError(path, dialects.unknown_format(line), line=first)
    return parse_known(path, fmt, _chain(head, lines))


def _chain(
    head: list[tuple[int, str]], rest: Iterator[tuple[int, str]]
) -> Iterator[tuple[int, str]]:
    """The lines read for detection, then the rest."""
    yield from head
    yield from rest


def parse_known(path: str, fmt: str, lines: Iterable[tuple[int, str]]) -> Trace:
    """Every line of a trace of known format into the event table (the reference rules; the
    fast parser hands it the lines it leaves)."""
    line_pattern = dialects.LINE_PATTERNS[fmt]
    lost_pattern = dialects.LOST_PATTERNS.get(fmt)
    syntax = event_schema()
    builder = EventTableBuilder()
    lost: list[LostMarker] = []
    for number, text in lines:
        if not text or dialects.is_comment(text):
            if fmt == dialects.TRACEFS_TRACE and (overwritten := dialects.overwritten(text)):
                lost.append(LostMarker(number, -1, overwritten))
            continue
        match = line_pattern.match(text)
        if match is None:
            marker = lost_pattern.match(text) if lost_pattern else None
            if marker:
                count = marker["count"]
                lost.append(
                    LostMarker(
                        number,
                        _int32(path, number, "cpu", marker["cpu"]),
                        _count(path, number, count),
                    )
                )
                continue
            if fmt == dialects.TRACE_CMD_REPORT and dialects.REPORT_HEADER.match(text):
                continue
            if fmt == dialects.PERF_SCRIPT and dialects.PERF_SIDEBAND.match(text):
                continue
            raise InputError(path, f"cannot parse {fmt} line: {text[:60]!r}", line=number)
        parts = _event_and_fields(fmt, match["body"])
        if parts is None:
            raise InputError(
                path, f"cannot parse event in {fmt} line: {match['body'][:60]!r}", line=number
            )
        event, fields = parts
        group = syntax.group_of(event)
        try:
            typed = read_group(group, fields) if group else {}
        except FieldError as err:
            raise InputError(path, f"cannot parse {event}: {err}", line=number) from None
        builder.add(
            _timestamp_ns(path, number, match["sec"], match["frac"]),
            _int32(path, number, "cpu", match["cpu"] or match.groupdict().get("latency_cpu")),
            _int32(path, number, "pid", match["pid"]),
            match["comm"],
            event,
            number,
            fields,
            typed,
        )
    return Trace(builder.finish(path, fmt, lost), path, fmt, lost)


def read_text(path: str | Path) -> Trace:
    """Parse a text trace (gzip-compressed or not) into the event table."""
    name = regular_file(path, "trace file")
    with open_text(name) as raw:
        return parse_lines(name, _lines(name, raw))
