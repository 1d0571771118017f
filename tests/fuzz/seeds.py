"""Seed inputs of the fuzzer, cut from the real fixtures (deterministic, built on first use
into a cache directory): small text traces of every format, their gzip streams, a small
trace.dat v6 rewritten from ``trace-v6.dat`` and the real ``lost.dat`` (v7, zstd), a stats
bundle, its meta.json and the shipped cost table."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOST = REPO / "fixtures" / "host"
BUNDLE = REPO / "fixtures" / "bundles" / "x86_64" / "6.12.117+deb13-cloud-amd64" / "microbench"
COSTS = REPO / "replay" / "costs" / "x86.toml"

TEXT_SOURCES = (
    "tracefs-trace",
    "tracefs-trace-tgid",
    "tracefs-pipe-lost",
    "trace_pipe",
    "report-v6",
    "report-v6-ts-diff",
    "report-v6-latency",
    "lost-report",
    "perf",
    "lost-perf",
    "perf-threads-pid",
    "perf-threads-sideband",
)
# a real capture with tracefs syscall lines (sys_NAME(ARGS), sys_NAME -> RET), which the text
# fixtures above do not have where their seeds are cut
SYSCALL_SOURCE = REPO / "fixtures/bundles/host/6.18.44-fc-v1300/process-madvise/trace.txt.gz"
SMALL_DAT_PAGES = 6  # ring-buffer pages kept in the small v6 seed


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _text_seed(name: str) -> bytes:
    """The header, the first 60 event lines and 40 from the middle of a host text fixture
    (every lost-event marker kept)."""
    lines = gzip.decompress((HOST / f"{name}.txt.gz").read_bytes()).splitlines(keepends=True)
    head = [line for line in lines[:40] if line.startswith((b"#", b"cpus=", b"version"))]
    body = [line for line in lines if line not in head]
    middle = len(body) // 2
    markers = [line for line in body if b"LOST" in line or b"DROPPED" in line]
    keep = body[:60] + body[middle : middle + 40]
    return b"".join(head + keep + [m for m in markers if m not in keep])


@cache
def text_seeds() -> dict[str, bytes]:
    return {
        **{name: _text_seed(name) for name in TEXT_SOURCES},
        "tracefs-syscalls": _syscall_seed(),
    }


def _syscall_seed() -> bytes:
    """The header, the first 40 event lines and every syscall line of :data:`SYSCALL_SOURCE`."""
    lines = gzip.decompress(SYSCALL_SOURCE.read_bytes()).splitlines(keepends=True)
    head = [line for line in lines[:40] if line.startswith(b"#")]
    body = [line for line in lines if line not in head]
    calls = [line for line in body if b": sys_" in line]
    return b"".join(head + body[:40] + [line for line in calls if line not in body[:40]])


@cache
def gzip_seeds() -> dict[str, bytes]:
    return {name: gzip.compress(text, mtime=0) for name, text in text_seeds().items()}


def _sized(data: bytes, size_bytes: int) -> bytes:
    return struct.pack("<Q" if size_bytes == 8 else "<I", len(data)) + data


def small_v6(source: Path = HOST / "trace-v6.dat", pages: int = SMALL_DAT_PAGES) -> bytes:
    """A trace.dat v6 holding the first ``pages`` ring-buffer pages of ``source``'s CPU, with
    only the formats of the event types on them (no kallsyms, no printk formats), in the top
    buffer: the same records in a file of a few tens of KiB."""
    from folio_replay.parsers.tracedat.container import open_dat
    from folio_replay.parsers.tracedat.ring import decode_pages

    dat = open_dat(source)
    cpu = next(c for b in dat.buffers for c in b.cpus if c.pages.size)
    data = cpu.pages[: pages * dat.page_size]
    records = decode_pages(str(source), data, dat.page_size, dat.header_page, cpu.file_offset)
    types = sorted({int(data[p]) | int(data[p + 1]) << 8 for p in records.payload})
    raw = source.read_bytes()
    header_at = raw.index(b"header_page\0")
    event_at = raw.index(b"header_event\0")
    header_page = raw[
        header_at + 20 : header_at + 20 + struct.unpack_from("<Q", raw, header_at + 12)[0]
    ]
    header_event = raw[
        event_at + 21 : event_at + 21 + struct.unpack_from("<Q", raw, event_at + 13)[0]
    ]
    systems: dict[str, list[bytes]] = {}
    for t in types:
        system, text, _ = dat.formats._text[t]
        systems.setdefault(system, []).append(text.encode())
    cmdlines = "".join(f"{pid} {comm}\n" for pid, comm in sorted(dat.cmdlines.items())).encode()
    out = bytearray(raw[:10] + b"6\0" + raw[12:18])  # magic, version, endian, long, page size
    out += b"header_page\0" + _sized(header_page, 8)
    out += b"header_event\0" + _sized(header_event, 8)
    out += struct.pack("<I", 0)  # ftrace formats
    out += struct.pack("<I", len(systems))
    for system, texts in systems.items():
        out += system.encode() + b"\0" + struct.pack("<I", len(texts))
        out += b"".join(_sized(text, 8) for text in texts)
    out += _sized(b"", 4) + _sized(b"", 4) + _sized(cmdlines, 8)  # kallsyms, printk, cmdlines
    out += struct.pack("<I", 1)  # CPUs
    out += b"options  \0" + struct.pack("<H", 0)
    out += b"flyrecord\0"
    table_at = len(out)
    out += bytes(16)
    out += bytes(-len(out) % dat.page_size)
    struct.pack_into("<QQ", out, table_at, len(out), data.size)
    return bytes(out + data.tobytes())


@cache
def dat_seeds() -> dict[str, bytes]:
    return {"small-v6": small_v6(), "lost-v7-zstd": (HOST / "lost.dat").read_bytes()}


STATS_SIZES = ("hugepages-16kB", "hugepages-64kB", "hugepages-2048kB")  # of 9 sizes


def _skipped(directory: str, names: list[str]) -> set[str]:
    """The trace, and the mTHP sizes beyond :data:`STATS_SIZES` (a case reads fewer files)."""
    return {n for n in names if n.startswith("trace")} | {
        n for n in names if n.startswith("hugepages-") and n not in STATS_SIZES
    }


def bundle_seed(target: Path) -> Path:
    """A copy of the real lab bundle with three of its mTHP sizes, its trace replaced by an
    empty file (the stats class does not read it)."""
    shutil.copytree(BUNDLE, target, ignore=_skipped)
    (target / "trace.txt").write_bytes(b"")
    return target


@cache
def meta_seed() -> bytes:
    return (BUNDLE / "meta.json").read_bytes()


@cache
def costs_seed() -> bytes:
    return COSTS.read_bytes()
