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
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from folio_replay.parsers.tracedat.event_formats import FormatTable, parse_header_page
from folio_replay.parsers.tracedat.zstd import decompress

from folio_replay.errors import InputError

MAGIC = b"\x17\x08Dtracing"

# Option ids (trace-cmd.dat.v7(5), "OPTIONS SECTION").
OPT_DONE, OPT_CPUSTAT, OPT_BUFFER, OPT_TRACECLOCK = 0, 2, 3, 4
OPT_OFFSET, OPT_TSC2NSEC = 7, 14
OPT_HEADER_INFO, OPT_FTRACE_EVENTS, OPT_EVENT_FORMATS = 16, 17, 18
OPT_KALLSYMS, OPT_PRINTK, OPT_CMDLINES, OPT_BUFFER_TEXT = 19, 20, 21, 22
SECTION_COMPRESSED = 1


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


class _Reader:
    """Little helpers over the mapped file that turn overruns into :class:`InputError`."""

    def __init__(self, path: str, data: bytes | mmap.mmap, endian: str = "<") -> None:
        self.path, self.data, self.end = path, data, endian

    def need(self, off: int, size: int, what: str) -> None:
        if off < 0 or off + size > len(self.data):
            raise InputError(
                self.path, f"truncated trace.dat: {what} runs past the end of the file", offset=off
            )

    def u(self, off: int, size: int, what: str) -> int:
        self.need(off, size, what)
        fmt = {2: "H", 4: "I", 8: "Q"}[size]
        return struct.unpack_from(self.end + fmt, self.data, off)[0]

    def cstr(self, off: int, what: str) -> tuple[str, int]:
        end = self.data.find(b"\0", off)
        if end < 0:
            raise InputError(self.path, f"truncated trace.dat: unterminated {what}", offset=off)
        return bytes(self.data[off:end]).decode("utf-8", "replace"), end + 1

    def blob(self, off: int, size: int, what: str) -> bytes:
        self.need(off, size, what)
        return bytes(self.data[off : off + size])


def is_trace_dat(head: bytes) -> bool:
    """True when ``head`` (the first bytes of a file) starts like a trace.dat."""
    return head.startswith(MAGIC)


def open_dat(path: str | Path) -> DatFile:
    """Read the container of the trace.dat at ``path``; page data stays memory-mapped."""
    path = str(path)
    with open(path, "rb") as fh:
        try:
            data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # empty file
            raise InputError(path, "empty file: not a trace.dat", offset=0) from None
    if not is_trace_dat(data[: len(MAGIC)]):
        raise InputError(path, "not a trace.dat (bad magic)", offset=0)
    r = _Reader(path, data)
    version_s, off = r.cstr(len(MAGIC), "version string")
    if version_s not in ("6", "7"):
        raise InputError(
            path,
            f"unsupported trace.dat version {version_s!r} (6 and 7 are read)",
            offset=len(MAGIC),
        )
    r.need(off, 6, "file header")
    if data[off] != 0:
        raise InputError(path, "big-endian trace.dat files are not supported", offset=off)
    long_size, page_size = data[off + 1], r.u(off + 2, 4, "page size")
    off += 6
    if version_s == "6":
        return _read_v6(r, off, long_size, page_size)
    return _read_v7(r, off, long_size, page_size)


# ---------------------------------------------------------------------------------------- v6


def _read_v6(r: _Reader, off: int, long_size: int, page_size: int) -> DatFile:
    header_page, off = _header_info(r, off)
    formats = FormatTable()
    off = _ftrace_formats(r, off, formats)
    off = _event_formats(r, off, formats)
    off += 4 + r.u(off, 4, "kallsyms size")
    off += 4 + r.u(off, 4, "printk formats size")
    size = r.u(off, 8, "saved cmdlines size")
    cmdlines = _cmdlines(r.blob(off + 8, size, "saved cmdlines"))
    off += 8 + size
    ncpus = r.u(off, 4, "CPU count")
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
                body = r.blob(off + 6, osize, "option")
                if oid == OPT_BUFFER:
                    name, _ = _cstr_of(body, 8)
                    instance_offsets.append((name, struct.unpack_from("<Q", body)[0]))
                else:
                    clock = _time_option(r, dat, oid, body, off, clock)
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


def _time_option(r: _Reader, dat: DatFile, oid: int, body: bytes, at: int, clock: str) -> str:
    """The time options of both versions: the trace clock (returned; ``clock`` when the option
    is another), the offset added to every time stamp (set in ``dat``), TSC-to-ns conversion
    (refused)."""
    if oid == OPT_TRACECLOCK:
        return _current_clock(body)
    if oid == OPT_OFFSET:
        dat.ts_offset = int(body.rstrip(b"\0") or 0)
    elif oid == OPT_TSC2NSEC:
        raise InputError(r.path, "TSC2NSEC timestamps are not supported", offset=at)
    return clock


def _v6_cpus(r: _Reader, off: int, ncpus: int, page_size: int) -> list[CpuData]:
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
    dat = DatFile(r.path, 7, long_size, page_size, comp_name, {}, FormatTable(), {}, [])
    clock = "local"
    buffers: list[bytes] = []
    sections: dict[int, int] = {}
    while opt_off:
        body = _section(r, opt_off, 0)
        pos, opt_off = 0, 0
        while pos + 6 <= len(body):
            oid, osize = struct.unpack_from("<HI", body, pos)
            obody = body[pos + 6 : pos + 6 + osize]
            pos += 6 + osize
            if oid == OPT_DONE:
                opt_off = struct.unpack_from("<Q", obody)[0]
                break
            if oid == OPT_BUFFER:
                buffers.append(obody)
            elif oid in (OPT_HEADER_INFO, OPT_FTRACE_EVENTS, OPT_EVENT_FORMATS, OPT_CMDLINES):
                sections[oid] = struct.unpack_from("<Q", obody)[0]
            else:
                clock = _time_option(r, dat, oid, obody, pos, clock)
    for need in (OPT_HEADER_INFO, OPT_EVENT_FORMATS):
        if need not in sections:
            raise InputError(r.path, f"trace.dat v7 without section option {need}", offset=0)
    sub = _Reader(r.path, _section(r, sections[OPT_HEADER_INFO], OPT_HEADER_INFO))
    dat.header_page, _ = _header_info(sub, 0)
    if OPT_FTRACE_EVENTS in sections:
        sub = _Reader(r.path, _section(r, sections[OPT_FTRACE_EVENTS], OPT_FTRACE_EVENTS))
        _ftrace_formats(sub, 0, dat.formats)
    sub = _Reader(r.path, _section(r, sections[OPT_EVENT_FORMATS], OPT_EVENT_FORMATS))
    _event_formats(sub, 0, dat.formats)
    if OPT_CMDLINES in sections:
        body = _section(r, sections[OPT_CMDLINES], OPT_CMDLINES)
        size = struct.unpack_from("<Q", body)[0]
        dat.cmdlines = _cmdlines(body[8 : 8 + size])
    for body in buffers:
        dat.buffers.append(_v7_buffer(r, body, clock, comp_name != "none"))
    return dat


def _section(r: _Reader, off: int, want_id: int) -> bytes:
    """The (uncompressed) body of the v7 section at ``off``, checking its id."""
    sid = r.u(off, 2, "section id")
    flags = r.u(off + 2, 2, "section flags")
    size = r.u(off + 8, 8, "section size")
    if sid != want_id:
        raise InputError(r.path, f"expected section {want_id}, found {sid}", offset=off)
    if flags & SECTION_COMPRESSED:
        csize = r.u(off + 16, 4, "compressed size")
        usize = r.u(off + 20, 4, "uncompressed size")
        return decompress(r.path, r.blob(off + 24, csize, "compressed section"), usize, off + 24)
    return r.blob(off + 16, size, "section")


def _v7_buffer(r: _Reader, body: bytes, clock: str, compressed: bool) -> Buffer:
    sec_off = struct.unpack_from("<Q", body)[0]
    name, pos = _cstr_of(body, 8)
    buf_clock, pos = _cstr_of(body, pos)
    page_size, ncpus = struct.unpack_from("<II", body, pos)
    pos += 8
    buf = Buffer(name, buf_clock or clock, page_size)
    if r.u(sec_off, 2, "buffer section id") != OPT_BUFFER:
        raise InputError(r.path, f"buffer {name!r}: no flyrecord section", offset=sec_off)
    for _ in range(ncpus):
        cpu, doff, dsize = struct.unpack_from("<IQQ", body, pos)
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
    for _ in range(count):
        csize = r.u(off, 4, "chunk compressed size")
        usize = r.u(off + 4, 4, "chunk uncompressed size")
        parts.append(decompress(r.path, r.blob(off + 8, csize, "chunk"), usize, off + 8))
        off += 8 + csize
    data = np.frombuffer(b"".join(parts), dtype=np.uint8)
    return data[: data.size - data.size % page_size]


# ------------------------------------------------------------------------------ shared parts


def _pages(r: _Reader, off: int, size: int, page_size: int) -> np.ndarray:
    if not size:
        return np.zeros(0, dtype=np.uint8)
    r.need(off, size, "CPU ring-buffer data")
    if size % page_size:
        raise InputError(
            r.path,
            f"CPU data of {size} bytes is not a whole number of {page_size}-byte pages",
            offset=off,
        )
    return np.frombuffer(r.data, dtype=np.uint8, count=size, offset=off)


def _header_info(r: _Reader, off: int) -> tuple[dict[str, tuple[int, int]], int]:
    if r.blob(off, 12, "header_page tag") != b"header_page\0":
        raise InputError(r.path, "missing header_page", offset=off)
    size = r.u(off + 12, 8, "header_page size")
    header_page = parse_header_page(r.blob(off + 20, size, "header_page").decode())
    off += 20 + size
    if r.blob(off, 13, "header_event tag") != b"header_event\0":
        raise InputError(r.path, "missing header_event", offset=off)
    size = r.u(off + 13, 8, "header_event size")
    return header_page, off + 21 + size


def _ftrace_formats(r: _Reader, off: int, formats: FormatTable) -> int:
    count = r.u(off, 4, "ftrace format count")
    off += 4
    for _ in range(count):
        size = r.u(off, 8, "ftrace format size")
        _add_format(r, formats, "ftrace", off + 8, size)
        off += 8 + size
    return off


def _event_formats(r: _Reader, off: int, formats: FormatTable) -> int:
    nsys = r.u(off, 4, "event system count")
    off += 4
    for _ in range(nsys):
        system, off = r.cstr(off, "event system name")
        count = r.u(off, 4, "event count")
        off += 4
        for _ in range(count):
            size = r.u(off, 8, "event format size")
            _add_format(r, formats, system, off + 8, size)
            off += 8 + size
    return off


def _add_format(r: _Reader, formats: FormatTable, system: str, off: int, size: int) -> None:
    try:
        formats.add(system, r.blob(off, size, "event format").decode("utf-8", "replace"))
    except ValueError as err:
        raise InputError(r.path, f"bad event format: {err}", offset=off) from None


def _cmdlines(text: bytes) -> dict[int, str]:
    out = {}
    for line in text.decode("utf-8", "replace").splitlines():
        pid, _, comm = line.strip().partition(" ")
        if pid.isdigit():
            out[int(pid)] = comm
    return out


def _cstr_of(body: bytes, pos: int) -> tuple[str, int]:
    end = body.index(b"\0", pos)
    return body[pos:end].decode("utf-8", "replace"), end + 1


def _current_clock(body: bytes) -> str:
    """The bracketed choice of a ``trace_clock`` file's text, e.g. ``local``."""
    text = body.rstrip(b"\0").decode("ascii", "replace")
    start, end = text.find("["), text.find("]")
    return text[start + 1 : end] if 0 <= start < end else text.strip()
