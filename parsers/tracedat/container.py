"""The trace-cmd ``trace.dat`` container (file versions 6 and 7): headers, formats, CPU data.

Layout from trace-cmd's own documentation, ``trace-cmd.dat.v6(5)`` and ``trace-cmd.dat.v7(5)``
(trace-cmd 3.1), checked against files written here by ``trace-cmd extract`` 3.1.6:

* v6: magic, version, endianness, long size, page size, then the header info, ftrace and event
  format files, kallsyms, printk formats, saved cmdlines, the CPU count, options and
  ``flyrecord`` (per-CPU offset and size).  Instance buffers (``extract -B``) are BUFFER options
  (id 3) pointing at their own ``flyrecord`` table.
* v7: the same metadata, but in sections (id, flags, string id, size) found through options;
  any section may be compressed (flag 1), and BUFFER FLYRECORD data is compressed in chunks.

Only the ring-buffer pages are kept as arrays (memory-mapped when uncompressed); the ring
itself is decoded by :mod:`folio_replay.parsers.tracedat.ring`.
"""

from __future__ import annotations

import mmap
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from folio_replay.parsers.files import regular_file
from folio_replay.parsers.limits import (
    CPUS,
    EVENT_SYSTEMS,
    EVENTS_PER_SYSTEM,
    PAGE_SIZE_MAX,
    SECTION_BYTES,
)
from folio_replay.parsers.tracedat.event_formats import FormatTable, parse_header_page
from folio_replay.parsers.tracedat.zstd import decompress

from folio_replay.errors import InputError

MAGIC = b"\x17\x08Dtracing"

# Option ids (trace-cmd.dat.v7(5), "OPTIONS SECTION").
OPT_DONE, OPT_CPUSTAT, OPT_BUFFER, OPT_TRACECLOCK, OPT_UNAME = 0, 2, 3, 4, 5
OPT_OFFSET, OPT_TSC2NSEC = 7, 14
OPT_HEADER_INFO, OPT_FTRACE_EVENTS, OPT_EVENT_FORMATS = 16, 17, 18
OPT_KALLSYMS, OPT_PRINTK, OPT_CMDLINES, OPT_BUFFER_TEXT = 19, 20, 21, 22
SECTION_COMPRESSED = 1
NAME_BYTES = 4096  # longest name string (version, compression, system, buffer, clock)
# libtraceevent's tep_parse_saved_cmdlines(): sscanf(line, "%d %m[^\n]s") per line
_CMDLINE = re.compile(r"[ \t\v\f\r]*+([-+]?[0-9]++)[ \t\v\f\r]*+(.+)", re.S)


@dataclass
class CpuData:
    """One CPU's ring-buffer pages of one buffer, uncompressed, as a flat byte array."""

    cpu: int
    pages: np.ndarray  # uint8, a whole number of pages
    file_offset: int  # where this CPU's data starts in the file (for error messages)
    mapped: bool = True  # pages are the file's own, memory-mapped (not decompressed)


@dataclass
class Buffer:
    """One trace instance's flyrecord data (the top buffer is named "")."""

    name: str
    clock: str
    page_size: int
    cpus: list[CpuData] = field(default_factory=list)


@dataclass
class DatFile:
    """Everything of a trace.dat the decoder needs."""

    path: str
    version: int
    long_size: int
    page_size: int
    compression: str
    header_page: dict[str, tuple[int, int]]  # field name -> (offset, size)
    formats: FormatTable
    cmdlines: dict[int, str]
    buffers: list[Buffer]
    ts_offset: int = 0
    uname: str = ""  # the recording machine's "SYSNAME NODENAME RELEASE MACHINE" (UNAME option)


class _Reader:
    """Little helpers over the mapped file (or a section of it, whose first byte is at file
    offset ``base``) that turn overruns into :class:`InputError`."""

    def __init__(self, path: str, data: bytes | mmap.mmap, base: int = 0) -> None:
        self.path, self.data, self.base = path, data, base

    def fail(self, off: int, message: str) -> InputError:
        return InputError(self.path, message, offset=self.base + off)

    def need(self, off: int, size: int, what: str) -> None:
        if off < 0 or size < 0 or off + size > len(self.data):
            raise self.fail(off, f"truncated trace.dat: {what} runs past the end of the file")

    def u(self, off: int, size: int, what: str) -> int:
        self.need(off, size, what)
        fmt = {2: "H", 4: "I", 8: "Q"}[size]
        return struct.unpack_from("<" + fmt, self.data, off)[0]

    def count(self, off: int, size: int, what: str, limit: int) -> int:
        """An unsigned count that must not exceed ``limit``."""
        value = self.u(off, size, what)
        if value > limit:
            raise self.fail(off, f"{what} {value} exceeds the limit {limit}")
        return value

    def cstr(self, off: int, what: str) -> tuple[str, int]:
        self.need(off, 1, what)
        end = self.data.find(b"\0", off, off + NAME_BYTES)
        if end < 0:
            raise self.fail(off, f"truncated trace.dat: unterminated {what}")
        return bytes(self.data[off:end]).decode("utf-8", "replace"), end + 1

    def blob(self, off: int, size: int, what: str) -> bytes:
        self.need(off, size, what)
        return bytes(self.data[off : off + size])

    def sized(self, off: int, size_bytes: int, what: str) -> tuple[bytes, int]:
        """A blob preceded by its size (``size_bytes`` wide); (blob, offset after it)."""
        size = self.u(off, size_bytes, f"{what} size")
        return self.blob(off + size_bytes, size, what), off + size_bytes + size


def is_trace_dat(head: bytes) -> bool:
    """True when ``head`` (the first bytes of a file) starts like a trace.dat."""
    return head.startswith(MAGIC)


def open_dat(path: str | Path) -> DatFile:
    """Read the container of the trace.dat at ``path``; page data stays memory-mapped."""
    name = regular_file(path, "trace file")
    with open(name, "rb") as fh:
        try:
            data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # empty file
            raise InputError(name, "empty file: not a trace.dat", offset=0) from None
    if not is_trace_dat(data[: len(MAGIC)]):
        raise InputError(name, "not a trace.dat (bad magic)", offset=0)
    r = _Reader(name, data)
    version_s, off = r.cstr(len(MAGIC), "version string")
    if version_s not in ("6", "7"):
        raise InputError(
            name,
            f"unsupported trace.dat version {version_s!r} (6 and 7 are read)",
            offset=len(MAGIC),
        )
    r.need(off, 6, "file header")
    if data[off] != 0:
        raise InputError(name, "big-endian trace.dat files are not supported", offset=off)
    long_size, page_size = data[off + 1], r.u(off + 2, 4, "page size")
    if not 0 < page_size <= PAGE_SIZE_MAX:
        raise InputError(name, f"page size {page_size} out of range", offset=off + 2)
    off += 6
    if version_s == "6":
        return _read_v6(r, off, long_size, page_size)
    return _read_v7(r, off, long_size, page_size)


# ---------------------------------------------------------------------------------------- v6


def _read_v6(r: _Reader, off: int, long_size: int, page_size: int) -> DatFile:
    header_page, off = _header_info(r, off)
    formats = FormatTable(r.path)
    off = _ftrace_formats(r, off, formats)
    off = _event_formats(r, off, formats)
    off += 4 + r.u(off, 4, "kallsyms size")
    off += 4 + r.u(off, 4, "printk formats size")
    text, off = r.sized(off, 8, "saved cmdlines")
    cmdlines = _cmdlines(text)
    ncpus = r.count(off, 4, "CPU count", CPUS)
    off += 4
    dat = DatFile(r.path, 6, long_size, page_size, "none", header_page, formats, cmdlines, [])
    clock = "local"
    instance_offsets: list[tuple[str, int]] = []
    while True:
        tag = r.blob(off, 10, "section tag")
        off += 10
        if tag == b"options  \0":
            while True:
                oid = r.u(off, 2, "option id")
                if oid == OPT_DONE:
                    off += 2
                    break
                osize = r.u(off + 2, 4, "option size")
                body = _Reader(r.path, r.blob(off + 6, osize, "option"), r.base + off + 6)
                if oid == OPT_BUFFER:
                    name, _ = body.cstr(8, "buffer name")
                    instance_offsets.append((name, body.u(0, 8, "buffer offset")))
                else:
                    clock = _header_option(dat, oid, body, clock)
                off += 6 + osize
        elif tag == b"flyrecord\0":
            top = Buffer("", clock, page_size, _v6_cpus(r, off, ncpus, page_size))
            if any(c.pages.size for c in top.cpus) or not instance_offsets:
                dat.buffers.append(top)
            break
        elif tag == b"latency  \0":
            raise InputError(
                r.path, "latency-format trace.dat (text inside) is not supported", offset=off - 10
            )
        else:
            raise InputError(r.path, f"unknown trace.dat section {tag!r}", offset=off - 10)
    for name, ioff in instance_offsets:
        if r.blob(ioff, 10, "buffer flyrecord tag") != b"flyrecord\0":
            raise InputError(r.path, f"buffer {name!r}: no flyrecord table", offset=ioff)
        dat.buffers.append(Buffer(name, clock, page_size, _v6_cpus(r, ioff + 10, ncpus, page_size)))
    return dat


def _header_option(dat: DatFile, oid: int, body: _Reader, clock: str) -> str:
    """The options of both versions that are not sections or buffers (``body``: the option's
    bytes): the trace clock (returned; ``clock`` when the option is another), the offset added
    to every time stamp and the recording machine's uname (set in ``dat``), TSC-to-ns
    conversion (refused); others are ignored."""
    if oid == OPT_UNAME:
        dat.uname = bytes(body.data).split(b"\0", 1)[0].decode("utf-8", "replace").strip()
    if oid == OPT_TRACECLOCK:
        return _ns_clock(body, 0, _current_clock(bytes(body.data)))
    if oid == OPT_OFFSET:
        dat.ts_offset = _offset_option(body)
    elif oid == OPT_TSC2NSEC:
        raise body.fail(0, "TSC2NSEC timestamps are not supported")
    return clock


def _offset_option(body: _Reader) -> int:
    """The time offset option: a decimal number (signed 64 bits) as text."""
    text = bytes(body.data).rstrip(b"\0")
    if not re.fullmatch(rb"-?\d{1,19}", text or b"0"):
        raise body.fail(0, f"time offset option is not a number: {text[:40]!r}")
    value = int(text or b"0")
    if not -(1 << 63) <= value < 1 << 63:
        raise body.fail(0, f"time offset option {value} beyond 64 bits")
    return value


def _v6_cpus(r: _Reader, off: int, ncpus: int, page_size: int) -> list[CpuData]:
    r.need(off, 16 * ncpus, "CPU data table")
    cpus = []
    for cpu in range(ncpus):
        doff = r.u(off + 16 * cpu, 8, "CPU data offset")
        dsize = r.u(off + 16 * cpu + 8, 8, "CPU data size")
        cpus.append(CpuData(cpu, _pages(r, doff, dsize, page_size), doff))
    return cpus


# ---------------------------------------------------------------------------------------- v7


def _read_v7(r: _Reader, off: int, long_size: int, page_size: int) -> DatFile:
    comp_name, off = r.cstr(off, "compression name")
    _comp_version, off = r.cstr(off, "compression version")
    if comp_name not in ("none", "zstd"):
        raise InputError(r.path, f"unsupported trace.dat compression {comp_name!r}", offset=off)
    opt_off = r.u(off, 8, "first options offset")
    dat = DatFile(r.path, 7, long_size, page_size, comp_name, {}, FormatTable(r.path), {}, [])
    clock = "local"
    buffers: list[_Reader] = []
    sections: dict[int, int] = {}
    seen: set[int] = set()
    while opt_off:
        if opt_off in seen:
            raise r.fail(opt_off, "options sections form a loop")
        seen.add(opt_off)
        options = _Reader(r.path, _section(r, opt_off, 0), opt_off + 16)
        pos, opt_off = 0, 0
        while pos + 6 <= len(options.data):
            oid, osize = options.u(pos, 2, "option id"), options.u(pos + 2, 4, "option size")
            obody = _Reader(r.path, options.blob(pos + 6, osize, "option"), options.base + pos + 6)
            pos += 6 + osize
            if oid == OPT_DONE:
                opt_off = obody.u(0, 8, "next options offset") if osize else 0
                break
            if oid == OPT_BUFFER:
                buffers.append(obody)
            elif oid in (OPT_HEADER_INFO, OPT_FTRACE_EVENTS, OPT_EVENT_FORMATS, OPT_CMDLINES):
                sections[oid] = obody.u(0, 8, "section offset")
            else:
                clock = _header_option(dat, oid, obody, clock)
    for need in (OPT_HEADER_INFO, OPT_EVENT_FORMATS):
        if need not in sections:
            raise InputError(r.path, f"trace.dat v7 without section option {need}", offset=0)
    dat.header_page, _ = _header_info(_sub(r, sections, OPT_HEADER_INFO), 0)
    if OPT_FTRACE_EVENTS in sections:
        _ftrace_formats(_sub(r, sections, OPT_FTRACE_EVENTS), 0, dat.formats)
    _event_formats(_sub(r, sections, OPT_EVENT_FORMATS), 0, dat.formats)
    if OPT_CMDLINES in sections:
        dat.cmdlines = _cmdlines(_sub(r, sections, OPT_CMDLINES).sized(0, 8, "saved cmdlines")[0])
    for body in buffers:
        dat.buffers.append(_v7_buffer(r, body, clock, comp_name != "none", page_size))
    return dat


def _sub(r: _Reader, sections: dict[int, int], sid: int) -> _Reader:
    """A reader of the (uncompressed) body of section ``sid``."""
    return _Reader(r.path, _section(r, sections[sid], sid), sections[sid] + 16)


def _section(r: _Reader, off: int, want_id: int) -> bytes:
    """The (uncompressed) body of the v7 section at ``off``, checking its id."""
    sid = r.u(off, 2, "section id")
    flags = r.u(off + 2, 2, "section flags")
    size = r.count(off + 8, 8, "section size", SECTION_BYTES)
    if sid != want_id:
        raise r.fail(off, f"expected section {want_id}, found {sid}")
    if flags & SECTION_COMPRESSED:
        csize = r.u(off + 16, 4, "compressed size")
        usize = r.count(off + 20, 4, "uncompressed size", SECTION_BYTES)
        return decompress(r.path, r.blob(off + 24, csize, "compressed section"), usize, off + 24)
    return r.blob(off + 16, size, "section")


def _v7_buffer(
    r: _Reader, body: _Reader, clock: str, compressed: bool, header_page_size: int
) -> Buffer:
    sec_off = body.u(0, 8, "buffer section offset")
    name, pos = body.cstr(8, "buffer name")
    clock_at = pos
    buf_clock, pos = body.cstr(pos, "buffer clock")
    _ns_clock(body, clock_at, buf_clock)
    page_size = body.u(pos, 4, "buffer page size")
    if page_size != header_page_size:  # trace-cmd reads the pages by the header's size
        raise body.fail(
            pos, f"buffer {name!r} has {page_size}-byte pages, the file header {header_page_size}"
        )
    ncpus = body.count(pos + 4, 4, "buffer CPU count", CPUS)
    pos += 8
    buf = Buffer(name, buf_clock or clock, page_size)
    if r.u(sec_off, 2, "buffer section id") != OPT_BUFFER:
        raise r.fail(sec_off, f"buffer {name!r}: no flyrecord section")
    body.need(pos, 20 * ncpus, "buffer CPU table")
    for _ in range(ncpus):
        cpu, doff, dsize = struct.unpack_from("<IQQ", body.data, pos)
        pos += 20
        if compressed and dsize:
            pages = _chunks(r, doff, page_size)
        else:
            pages = _pages(r, doff, dsize, page_size)
        buf.cpus.append(CpuData(cpu, pages, doff, mapped=not (compressed and dsize)))
    return buf


def _chunks(r: _Reader, off: int, page_size: int) -> np.ndarray:
    """Decompress one CPU's chunked flyrecord data (v7 "COMPRESSION FORMAT OF THE TRACE DATA")."""
    count = r.u(off, 4, "chunk count")
    off += 4
    parts = []
    total = 0
    for _ in range(count):
        csize = r.u(off, 4, "chunk compressed size")
        usize = r.count(off + 4, 4, "chunk uncompressed size", SECTION_BYTES - total)
        parts.append(decompress(r.path, r.blob(off + 8, csize, "chunk"), usize, off + 8))
        total += usize
        off += 8 + csize
    data = np.frombuffer(b"".join(parts), dtype=np.uint8)
    return data[: data.size - data.size % page_size]


# ------------------------------------------------------------------------------ shared parts


def _pages(r: _Reader, off: int, size: int, page_size: int) -> np.ndarray:
    if not size:
        return np.zeros(0, dtype=np.uint8)
    r.need(off, size, "CPU ring-buffer data")
    if size % page_size:
        raise r.fail(
            off, f"CPU data of {size} bytes is not a whole number of {page_size}-byte pages"
        )
    return np.frombuffer(r.data, dtype=np.uint8, count=size, offset=off)


def _header_info(r: _Reader, off: int) -> tuple[dict[str, tuple[int, int]], int]:
    if r.blob(off, 12, "header_page tag") != b"header_page\0":
        raise r.fail(off, "missing header_page")
    text, end = r.sized(off + 12, 8, "header_page")
    try:
        header_page = parse_header_page(text.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise r.fail(off + 20 + err.start, "header_page is not UTF-8 text") from None
    except ValueError as err:
        raise r.fail(off + 20, f"bad header_page: {err}") from None
    if r.blob(end, 13, "header_event tag") != b"header_event\0":
        raise r.fail(end, "missing header_event")
    return header_page, r.sized(end + 13, 8, "header_event")[1]


def _ftrace_formats(r: _Reader, off: int, formats: FormatTable) -> int:
    count = r.count(off, 4, "ftrace format count", EVENTS_PER_SYSTEM)
    off += 4
    for _ in range(count):
        size = r.u(off, 8, "ftrace format size")
        _add_format(r, formats, "ftrace", off + 8, size)
        off += 8 + size
    return off


def _event_formats(r: _Reader, off: int, formats: FormatTable) -> int:
    nsys = r.count(off, 4, "event system count", EVENT_SYSTEMS)
    off += 4
    for _ in range(nsys):
        system, off = r.cstr(off, "event system name")
        count = r.count(off, 4, "event count", EVENTS_PER_SYSTEM)
        off += 4
        for _ in range(count):
            size = r.u(off, 8, "event format size")
            _add_format(r, formats, system, off + 8, size)
            off += 8 + size
    return off


def _add_format(r: _Reader, formats: FormatTable, system: str, off: int, size: int) -> None:
    text = r.blob(off, size, "event format").decode("utf-8", "replace")
    try:
        formats.add(system, text, r.base + off)
    except ValueError as err:
        raise r.fail(off, f"bad event format: {err}") from None


def _cmdlines(text: bytes) -> dict[int, str]:
    """Saved cmdlines, read as libtraceevent reads them: the text up to a NUL, one ``PID
    COMM`` line after the other (empty lines skipped) up to the first line that is not one;
    a pid given twice keeps its first comm; pids beyond 32 bits wrap as C's int does."""
    out: dict[int, str] = {}
    for line in text.split(b"\0", 1)[0].decode("utf-8", "replace").split("\n"):
        if not line:
            continue
        match = _CMDLINE.fullmatch(line)
        if match is None:
            break
        pid = max(min(int(match[1]), (1 << 63) - 1), -(1 << 63)) if len(match[1]) < 30 else -1
        out.setdefault((pid + (1 << 31)) % (1 << 32) - (1 << 31), match[2])
    return out


# Trace clocks whose time stamps are not nanoseconds (kernel/trace/trace.c trace_clocks[]:
# in_ns 0): the decoder would read cycles or ticks as nanoseconds.
COUNTING_CLOCKS = ("counter", "uptime", "x86-tsc")


def _ns_clock(body: _Reader, off: int, clock: str) -> str:
    """``clock``, refused when its time stamps are not nanoseconds."""
    if clock in COUNTING_CLOCKS:
        raise body.fail(
            off,
            f"trace clock {clock!r} counts cycles or ticks, not nanoseconds: record with a "
            "nanosecond clock (trace-cmd record -C local, mono or boot)",
        )
    return clock


def _current_clock(body: bytes) -> str:
    """The bracketed choice of a ``trace_clock`` file's text, e.g. ``local``."""
    text = body.rstrip(b"\0").decode("ascii", "replace")
    start, end = text.find("["), text.find("]")
    return text[start + 1 : end] if 0 <= start < end else text.strip()
