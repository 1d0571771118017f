"""Build large benchmark inputs from the real fixtures by repeating them with shifted times.

* text: the event lines of a real text trace (tracefs, trace-cmd report, perf script), or of
  several one after another (a mix of captures), written again and again, each copy's
  timestamps moved on by whole seconds (the seconds field is
  rewritten in place, right-aligned in its own width, so every line keeps its length);
* trace.dat: the ring-buffer pages of a real uncompressed trace.dat (v6) repeated per CPU, each
  copy's page time stamps moved on by the trace's span; the file's flyrecord table is patched
  to the new sizes, so trace-cmd reads the result too.

Usage: python -m bench.make_inputs text FIXTURE [FIXTURE...] OUT --bytes N
       python -m bench.make_inputs dat FIXTURE.dat OUT --copies K
"""

from __future__ import annotations

import argparse
import gzip
import os
import struct
import sys
from pathlib import Path

import numpy as np
from folio_replay.parsers.text import scan
from folio_replay.parsers.text.chunks import KERNEL_FORMAT
from folio_replay.parsers.text.fast import detect, padded, text_chunks
from folio_replay.parsers.tracedat.container import open_dat

NS = 1_000_000_000


def _read_text(path: str) -> bytes:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    with opener(path, "rb") as fh:
        return fh.read()


def _event_lines(fixture: str) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """A fixture's event lines as one byte array: (format, bytes, offset of each line's
    seconds field, its seconds)."""
    chunk = next(text_chunks(fixture))
    fmt = detect(fixture, chunk).fmt
    data = _read_text(fixture)
    buf = padded(data)
    ends = np.flatnonzero(buf[: len(data)] == 10)
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    kind, _cs, _ce, _pid, _cpu, _ts, _es, _ee, _fs = scan.scan_lines(
        buf, starts, ends, KERNEL_FORMAT[fmt]
    )
    # every line with a task, CPU and time stamp: events and the lines the fast scanner hands
    # to the reference parser (syscall enter/exit lines among them); headers are not copied
    ok = np.flatnonzero(kind != scan.SKIP)
    # the seconds field: digits (and its left padding) before the "." of the timestamp
    block = b"".join(data[s : e + 1] for s, e in zip(starts[ok], ends[ok]))
    bbuf = np.frombuffer(block, np.uint8).copy()
    line_len = ends[ok] - starts[ok] + 1
    line_start = np.concatenate([[0], np.cumsum(line_len)[:-1]])
    dot = _dot_positions(bbuf, line_start, line_len)
    sec = _seconds(block, line_start + dot)
    return fmt, bbuf, line_start + dot - SECONDS_WIDTH, sec


SECONDS_WIDTH = 5  # the seconds field is right-aligned in at least 5 columns


def make_text(fixture: str | list[str], out: str, nbytes: int) -> dict:
    """Write about ``nbytes`` of the event lines of ``fixture`` (or of several fixtures of one
    format, one after another: a mix of real captures), shifted copy by copy: each copy starts
    a whole second after the last ended."""
    parts = [_event_lines(f) for f in ([fixture] if isinstance(fixture, str) else fixture)]
    formats = {fmt for fmt, *_ in parts}
    if len(formats) != 1:
        raise SystemExit(f"fixtures of several formats: {sorted(formats)}")
    size = sum(len(bbuf) for _, bbuf, _, _ in parts)
    copies = max(1, nbytes // size)
    cols = np.arange(SECONDS_WIDTH)
    tmp = out + ".tmp"
    start = min(int(sec.min()) for *_, sec in parts)
    with open(tmp, "wb") as fh:
        for _ in range(copies):
            for _, bbuf, first, sec in parts:
                shifted = sec - sec.min() + start
                if shifted.max() >= 10**SECONDS_WIDTH:
                    raise SystemExit("seconds outgrow the field; use fewer bytes")
                digits = (shifted[:, None] // (10 ** (SECONDS_WIDTH - 1 - cols))) % 10
                nonzero = np.cumsum(digits != 0, axis=1) > 0
                text = np.where(nonzero | (cols == SECONDS_WIDTH - 1), digits + 48, 32)
                bbuf[first[:, None] + cols] = text.astype(np.uint8)
                fh.write(bbuf.tobytes())
                start = int(shifted.max()) + 1
    os.replace(tmp, out)
    return {
        "format": formats.pop(),
        "lines": sum(len(first) for _, _, first, _ in parts) * copies,
        "bytes": size * copies,
        "copies": copies,
    }


def _dot_positions(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Offset in each line of the "." of its timestamp (the first "." followed by digits and ": "
    after the "]" of the CPU)."""
    out = np.empty(starts.size, np.int64)
    for i, (s, n) in enumerate(zip(starts.tolist(), lengths.tolist())):
        line = bytes(buf[s : s + n])
        rb = line.index(b"]")
        colon = line.index(b": ", rb)
        out[i] = line.rindex(b".", rb, colon)
    return out


def _seconds(block: bytes, dots: np.ndarray) -> np.ndarray:
    """The whole seconds of each time stamp (the digits before its ".")."""
    out = np.empty(dots.size, np.int64)
    for i, dot in enumerate(dots.tolist()):
        start = dot
        while start > 0 and 48 <= block[start - 1] <= 57:
            start -= 1
        out[i] = int(block[start:dot])
    return out


def make_dat(fixture: str, out: str, copies: int) -> dict:
    """Write ``fixture`` (an uncompressed v6 trace.dat) with its pages repeated ``copies`` times."""
    dat = open_dat(fixture)
    if dat.version != 6:
        raise SystemExit(
            "make_dat needs an uncompressed v6 file (trace-cmd convert --file-version 6)"
        )
    raw = Path(fixture).read_bytes()
    buffers = [b for b in dat.buffers if any(c.pages.size for c in b.cpus)]
    if len(buffers) != 1:
        raise SystemExit("make_dat needs exactly one buffer with data")
    buf = buffers[0]
    table_at = _flyrecord_table(raw, dat, buf.name)
    data_start = min(c.file_offset for c in buf.cpus if c.pages.size)
    stamps = np.concatenate(
        [
            c.pages.reshape(-1, buf.page_size)[:, :8].copy().view("<u8").ravel()
            for c in buf.cpus
            if c.pages.size
        ]
    )
    span = int(stamps.max() - stamps.min()) + NS
    tmp = out + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(raw[:data_start])
        pos = data_start
        entries = []
        for cpu in buf.cpus:
            size = cpu.pages.size * copies
            entries.append((pos if size else 0, size))
            pages = cpu.pages.reshape(-1, buf.page_size).copy()
            base = pages[:, :8].copy().view("<u8").ravel()
            for k in range(copies):
                pages[:, :8] = (base + np.uint64(k * span)).view(np.uint8).reshape(-1, 8)
                fh.write(pages.tobytes())
            pos += size
        for cpu, (off, size) in zip(buf.cpus, entries):
            fh.seek(table_at + 16 * cpu.cpu)
            fh.write(struct.pack("<QQ", off, size))
    os.replace(tmp, out)
    return {"copies": copies, "bytes": os.path.getsize(out)}


def _flyrecord_table(raw: bytes, dat, name: str) -> int:
    """File offset of the (offset, size) table of buffer ``name``'s CPUs in a v6 file."""
    tag = name.encode() + b"\0"
    at = raw.find(tag)
    while at >= 0:
        off = struct.unpack_from("<Q", raw, at - 8)[0]
        if raw[off : off + 10] == b"flyrecord\0":
            return off + 10
        at = raw.find(tag, at + 1)
    raise SystemExit(f"no flyrecord table for buffer {name!r}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    t = sub.add_parser("text")
    t.add_argument("fixture", nargs="+", help="one text trace, or several of one format (a mix)")
    t.add_argument("out")
    t.add_argument("--bytes", type=float, required=True)
    d = sub.add_parser("dat")
    d.add_argument("fixture")
    d.add_argument("out")
    d.add_argument("--copies", type=int, required=True)
    args = ap.parse_args(argv)
    if args.what == "text":
        print(make_text(args.fixture, args.out, int(args.bytes)))
    else:
        print(make_dat(args.fixture, args.out, args.copies))


if __name__ == "__main__":
    sys.exit(main())
