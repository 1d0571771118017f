"""Fast reading of text traces: the file in chunks of whole lines, each parsed with numpy by
:mod:`folio_replay.parsers.text.chunks`; the same table, lost-event markers and errors as
:func:`folio_replay.parsers.text.reference.read_text`.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from folio_replay.parsers._native.byteops import has_high
from folio_replay.parsers.files import regular_file
from folio_replay.parsers.schema import (
    META_FORMAT,
    META_LOST_EVENTS,
    META_SOURCE,
    event_table_schema,
)
from folio_replay.parsers.table import META_LOST_MARKERS, EventTableBuilder, LostMarker, Trace
from folio_replay.parsers.text import dialects, scan
from folio_replay.parsers.text.chunks import ChunkParser
from folio_replay.parsers.text.reference import (
    BINARY_PROBE,
    DETECT_LINES,
    GZIP_MAGIC,
    PERF_DATA_MAGIC,
    binary_data,
    read_text,
)

from folio_replay.errors import InputError

CHUNK_BYTES = 8 << 20  # temporaries stay below glibc's mmap threshold (reused, not faulted in)
DETECT_BYTES = 1 << 20  # the first lines, for format detection
PAD = 16  # zero bytes after a chunk, so that no read near its end leaves the array


def padded(data: bytes) -> np.ndarray:
    """The bytes as a uint8 array with :data:`PAD` zero bytes after them."""
    out = np.zeros(len(data) + PAD, np.uint8)
    out[: len(data)] = np.frombuffer(data, np.uint8)
    return out


@dataclass
class TextChunk:
    """Whole lines of a text trace: ``data[:nbytes]`` (padded), first line number, where in
    the (decompressed) text it starts, the positions of its newlines, and whether it is
    ASCII."""

    data: np.ndarray
    nbytes: int
    first_line: int
    offset: int
    file_pos: int  # bytes of the file (compressed, for gzip) read so far
    ends: np.ndarray  # positions of the newlines in data[:nbytes]
    ascii_only: bool  # no byte above 0x7f


def _open(path: str):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == GZIP_MAGIC else open(path, "rb")


def text_chunks(path: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[TextChunk]:
    """The text of ``path`` (gzip or not) as chunks of whole lines, checked as the reference
    reader checks them: NUL bytes near the start, UTF-8, a last line without newline.

    The chunks share their buffers: a chunk is valid until the next one is asked for.
    """
    line = 1
    offset = 0
    buf = np.zeros(chunk_bytes + PAD, np.uint8)
    newlines = np.empty(chunk_bytes // 64 + 1, np.int64)
    have = 0
    with _open(path) as raw:
        fileobj = getattr(raw, "fileobj", raw)
        while True:
            if have == buf.size - PAD:  # a line longer than the buffer: grow it
                buf = np.concatenate([buf, np.zeros(buf.size, np.uint8)])
            try:
                got = raw.readinto(buf.data[have : buf.size - PAD])
            except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as err:
                raise InputError(
                    path,
                    f"truncated or corrupt compressed data ({err})",
                    line=_line_of_gzip_error(path),
                ) from None
            if not got:
                break
            have += got
            count = scan.line_ends(buf, have, newlines)  # the carried-over tail has none
            while count < 0:
                newlines = np.empty(2 * newlines.size, np.int64)
                count = scan.line_ends(buf, have, newlines)
            ends = newlines[:count]
            if ends.size == 0:
                continue
            cut = int(ends[-1]) + 1
            ascii_only = not has_high(buf, 0, cut)
            _check(path, buf, cut, line, offset, ascii_only)
            yield TextChunk(buf, cut, line, offset, fileobj.tell(), ends, ascii_only)
            line += ends.size
            offset += cut
            buf[: have - cut] = buf[cut:have]
            have -= cut
    if have:
        tail = padded(bytes(buf[:have]) + b"\n")
        _check(path, tail, have + 1, line, offset, False)
        raise InputError(path, "truncated line (the file ends in the middle of a line)", line=line)
    if offset == 0:
        raise InputError(path, "empty file")


def _line_of_gzip_error(path: str) -> int:
    """The line at which reading the (corrupt) gzip file line by line fails, as the reference
    reader meets the error: one past the last line it could read."""
    count = 0
    try:
        with gzip.open(path, "rb") as raw:
            for _ in raw:
                count += 1
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError):
        pass
    return count + 1


def _check(
    path: str, buf: np.ndarray, nbytes: int, line: int, offset: int, ascii_only: bool
) -> None:
    """NUL in a line starting within the first 4 KiB; invalid UTF-8 (by line number), unless
    the text is ``ascii_only``."""
    if offset < BINARY_PROBE:
        nul = np.flatnonzero(buf[:nbytes] == 0)
        if nul.size:
            first = int(nul[0])
            line_start = (
                int(np.flatnonzero(buf[:first] == 10)[-1]) + 1
                if first and (buf[:first] == 10).any()
                else 0
            )
            if offset + line_start < BINARY_PROBE:
                head = bytes(buf[: len(PERF_DATA_MAGIC)]) if offset == 0 else b""
                raise InputError(path, binary_data(head), offset=offset + first)
    if ascii_only:
        return
    try:
        pa.LargeStringArray.from_buffers(
            1, pa.py_buffer(np.array([0, nbytes], np.int64)), pa.py_buffer(buf)
        ).validate(full=True)
    except pa.ArrowInvalid:
        for number, text in enumerate(bytes(buf[:nbytes]).split(b"\n"), start=line):
            try:
                text.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(path, "not UTF-8 text (binary data?)", line=number) from None


@dataclass
class Detected:
    """What the first lines say: the format, or that there is only a tracefs header."""

    fmt: str | None
    header_only: bool
    lost: list[LostMarker] = field(default_factory=list)  # the tracefs header's overwritten


def detect(path: str, chunk: TextChunk) -> Detected:
    """Detect the format from the first lines, exactly as the reference parser does."""
    head: list[tuple[int, str]] = []
    saw_tracer_header = False
    body_lines = 0
    text = bytes(chunk.data[: min(chunk.nbytes, DETECT_BYTES)])
    if len(text) < chunk.nbytes:
        text = text[: text.rfind(b"\n") + 1]
    for number, raw in enumerate(text.split(b"\n")[:-1], start=chunk.first_line):
        line = raw.decode("utf-8").rstrip("\r")
        head.append((number, line))
        if dialects.is_comment(line):
            saw_tracer_header = saw_tracer_header or line.startswith("# tracer:")
        elif line:
            body_lines += 1
            if body_lines >= DETECT_LINES:
                break
    body = [t for _, t in head if t and not dialects.is_comment(t)]
    fmt = dialects.detect(body, saw_tracer_header)
    if fmt is None:
        if not body:
            if saw_tracer_header:
                return Detected(None, True)
            raise InputError(path, "unknown format (no event lines)", line=head[-1][0])
        first, line = next((n, t) for n, t in head if t and not dialects.is_comment(t))
        raise InputError(path, dialects.unknown_format(line), line=first)
    overwritten = [(number, dialects.overwritten(line)) for number, line in head]
    lost = [
        LostMarker(number, -1, count)
        for number, count in overwritten
        if count and fmt == dialects.TRACEFS_TRACE
    ]
    return Detected(fmt, False, lost)


@dataclass
class FastChunks:
    """A text trace as a sequence of event-table pieces (see :func:`parse_chunks`)."""

    path: str
    fmt: str
    tables: Iterator[pa.Table]
    lost: list[LostMarker]
    position: int = 0  # bytes of the file behind the tables yielded so far


def parse_chunks(path: str | Path, chunk_bytes: int = CHUNK_BYTES) -> FastChunks:
    """Parse a text trace into tables of the lines of about ``chunk_bytes`` of text each;
    ``lost`` fills as ``tables`` is consumed.  The text is parsed in pieces of at most
    :data:`CHUNK_BYTES` (with 32 MiB pieces the parse took 25-40% longer: the later passes
    over a piece no longer find it in the CPU caches)."""
    name: str = regular_file(path, "trace file")
    chunks = text_chunks(name, min(chunk_bytes, CHUNK_BYTES))
    first = next(chunks, None)
    if first is None:
        raise InputError(name, "empty file")
    found = detect(name, first)
    lost: list[LostMarker] = list(found.lost)
    if found.header_only:
        # the reference reads on: the rest must hold no event line, and no cut line
        if any(_has_body(chunk) for chunk in chunks):
            trace = read_text(name)
            return FastChunks(name, trace.format, iter([trace.table]), trace.lost)
        fmt = dialects.TRACEFS_TRACE
        return FastChunks(
            name,
            fmt,
            iter([_finish(EventTableBuilder().finish(name, fmt, []), name, fmt, lost)]),
            lost,
        )

    fmt_found = found.fmt
    assert fmt_found is not None  # detect() raises when no format is found
    result: FastChunks

    def tables() -> Iterator[pa.Table]:
        parser = ChunkParser(name, fmt_found)
        parts: list[pa.Table] = []
        size = 0
        for chunk in _chain(first, chunks):
            part = parser.parse(
                chunk.data, chunk.nbytes, chunk.first_line, chunk.ends, chunk.ascii_only
            )
            lost.extend(part.lost)
            parts.append(part.table)
            size += chunk.nbytes
            result.position = chunk.file_pos
            if size >= chunk_bytes:
                yield _joined(parts)
                parts, size = [], 0
        if parts:
            yield _joined(parts)

    result = FastChunks(name, fmt_found, tables(), lost)
    return result


def _has_body(chunk: TextChunk) -> bool:
    """Whether a chunk holds a line that is neither empty nor a ``#`` comment."""
    text = bytes(chunk.data[: chunk.nbytes])
    return any(line.rstrip(b"\r") and line[:1] != b"#" for line in text.split(b"\n"))


def _joined(parts: list[pa.Table]) -> pa.Table:
    return parts[0] if len(parts) == 1 else pa.concat_tables(parts)


def _chain(first: TextChunk, rest: Iterator[TextChunk]) -> Iterator[TextChunk]:
    yield first
    yield from rest


def _finish(table: pa.Table, path: str, fmt: str, lost: list[LostMarker]) -> pa.Table:
    """The reference parser's schema metadata: format, source, lost events and markers."""
    metadata = {
        META_FORMAT: fmt.encode(),
        META_SOURCE: path.encode(),
        META_LOST_EVENTS: str(sum(m.count or 0 for m in lost)).encode(),
        META_LOST_MARKERS: json.dumps([m.__dict__ for m in lost]).encode(),
    }
    return table.replace_schema_metadata(metadata)


def read_text_fast(path: str | Path, chunk_bytes: int = CHUNK_BYTES) -> Trace:
    """Parse a text trace (gzip or not) into the event table; equal to ``read_text``."""
    parsed = parse_chunks(path, chunk_bytes)
    parts = list(parsed.tables)
    table = pa.concat_tables(parts) if parts else event_table_schema().empty_table()
    return Trace(
        _finish(table, parsed.path, parsed.fmt, parsed.lost), parsed.path, parsed.fmt, parsed.lost
    )
