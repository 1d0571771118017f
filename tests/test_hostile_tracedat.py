"""Hostile trace.dat files (issue 15), each made here from the real ``trace-v6.dat`` fixture:
no crash, no runaway memory, no eval, no traceback; a damaged page is skipped and reported,
anything else bad is one error naming the byte offset."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest
from folio_replay.parsers.tracedat.cexpr import c_int
from folio_replay.parsers.tracedat.container import open_dat
from folio_replay.parsers.tracedat.read import read_dat
from folio_replay.parsers.tracedat.ring import decode_pages
from parse_fixtures import HOST

from folio_replay.errors import InputError, InputWarning

V6 = HOST / "trace-v6.dat"
RECORDS = 14860  # events of trace-v6.dat (fixtures/host/README.md)
MISSED_EVENTS, MISSED_STORED = 1 << 31, 1 << 30


@pytest.fixture(scope="module")
def layout():
    """The fixture's container facts: its one CPU's data and the sound decode of its pages."""
    dat = open_dat(V6)
    cpu = next(c for b in dat.buffers for c in b.cpus if c.pages.size)
    sound = decode_pages("x", cpu.pages, dat.page_size, dat.header_page, cpu.file_offset)
    return dat, cpu, sound


def _edited(tmp: Path, edits: dict[int, bytes]) -> Path:
    data = bytearray(V6.read_bytes())
    for at, new in edits.items():
        data[at : at + len(new)] = new
    out = tmp / "hostile.dat"
    out.write_bytes(bytes(data))
    return out


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from folio_replay.cli import main; main()", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )


def test_missed_count_past_the_last_page_is_a_damaged_page(tmp_path, layout):
    """The hostile tester's SIGSEGV: the file's last page says "missed events, count stored"
    with a full data size, so the count would lie past the end of the mapped file."""
    dat, cpu, sound = layout
    assert cpu.file_offset + cpu.pages.size == V6.stat().st_size  # the file's last page
    last = cpu.file_offset + cpu.pages.size - dat.page_size
    room = dat.page_size - dat.header_page["data"][0]
    bad = _edited(tmp_path, {last + 8: struct.pack("<Q", room | MISSED_EVENTS | MISSED_STORED)})
    out = tmp_path / "events.parquet"
    proc = _cli("parse", str(bad), "-o", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (warning,) = proc.stderr.splitlines()
    assert warning == (
        f"folio-replay: warning: {bad}@{last + 16 + room:#x}: 1 damaged ring-buffer page(s) "
        "skipped, their events counted as lost (first: CPU 0 page 132: missed-events count "
        "does not fit in the page)"
    )
    on_last_page = sound.ts.size - int(sound.first[-1])
    assert f"{RECORDS - on_last_page} events" in proc.stdout
    assert "0 lost events (+1 markers without a count)" in proc.stdout
    assert {p.name for p in tmp_path.iterdir()} == {"hostile.dat", "events.parquet"}


def _refusal_and_growth(bad: Path, warm: Path) -> tuple[str, int]:
    """In a fresh process: read ``warm`` (compiles and touches what any read needs), then
    ``bad``; its error line and how much the peak RSS grew while reading it (KiB)."""
    code = (
        "import resource\n"
        "from folio_replay.parsers.tracedat.read import read_dat\n"
        "from folio_replay.errors import InputError\n"
        f"read_dat({str(warm)!r})\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        f"    read_dat({str(bad)!r})\n"
        "except InputError as err:\n"
        "    print(err.one_line())\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    message, growth_kib = proc.stdout.splitlines()
    return message, int(growth_kib)


def test_huge_pid_is_refused_before_allocating(tmp_path, layout):
    """A first record whose pid is 0x7fffffff once made the decoder allocate 16 GiB."""
    _dat, cpu, sound = layout
    pid_at = cpu.file_offset + int(sound.payload[0]) + 4
    bad = _edited(tmp_path, {pid_at: struct.pack("<i", 0x7FFFFFFF)})
    message, growth_kib = _refusal_and_growth(bad, V6)
    assert message == f"{bad}@{pid_at:#x}: record with pid 2147483647 (outside 0..4194304)"
    assert growth_kib < 1 << 17  # under 128 MiB (a 16 GiB table before)


def test_print_fmt_constants_are_not_evaluated_with_eval(tmp_path):
    """``1<<0xffffffffff`` in a print fmt once ran through eval (MemoryError); now the map
    holding it does not evaluate, and since a typed column needs it, the format is refused
    (rather than reasons shown as numbers where trace-cmd shows names)."""
    data = V6.read_bytes()
    old = b'{ 5, "remote wrong CPU" }'
    new = b'{1<<0xffffffffff,"ab" }'.ljust(len(old))
    assert data.count(old) == 1
    bad = tmp_path / "shift.dat"
    bad.write_bytes(data.replace(old, new))
    with pytest.raises(InputError) as err:
        read_dat(bad)
    tlb = next(f for f in map(open_dat(V6).formats.get, range(2000)) if f and f.name == "tlb_flush")
    assert err.value.offset == open_dat(V6).formats.offset(tlb.id)
    assert err.value.message == (
        "bad event format tlb_flush: print fmt's symbolic values of reason cannot be evaluated"
    )
    with pytest.raises(ValueError, match="shift count 1099511627775 out of range"):
        c_int("1<<0xffffffffff")


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("(( gfp_t)(0x400u|0x800u))", 0xC00),
        ("( unsigned long)((((1UL))) << (10))", 1 << 10),
        ("~0", -1),
        ("0400", 256),
        ("-7/2", -3),
    ],
)
def test_c_int_values(expr, value):
    assert c_int(expr) == value


@pytest.mark.parametrize(
    "expr",
    ["1" * 30, "(" * 40 + "1" + ")" * 40, "1/0", "__import__('os')", "0xffffffffffffffff*16"],
)
def test_c_int_refuses(expr):
    with pytest.raises(ValueError):
        c_int(expr)


def test_real_print_fmt_constants():
    """GFP masks of the 6.18 fixture's mm_page_alloc, as include/linux/gfp_types.h builds
    them, and mm_lru_insertion's per-bit letters."""
    formats = open_dat(V6).formats
    alloc = next(f for f in map(formats.get, range(2000)) if f and f.name == "mm_page_alloc")
    masks = dict((name, mask) for mask, name in alloc.flags["gfp_flags"][1])
    assert masks["GFP_KERNEL"] == 0xCC0 and masks["GFP_ATOMIC"] == 0x820
    assert masks["GFP_HIGHUSER_MOVABLE"] == 0x100CCA and masks["GFP_TRANSHUGE"] == 0x1C24CA
    lru = next(f for f in map(formats.get, range(2000)) if f and f.name == "mm_lru_insertion")
    assert [mask for mask, _, _ in lru.letters["flags"]] == [1, 2, 8, 16, 32, 64]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (b"local_t commit;", b"local_t commix;", "bad header_page: header_page lacks commit"),
        (b"u64 timestamp;", b"u64 timest\xffmp;", "header_page is not UTF-8 text"),
        (b"offset:8;\tsize:8;\tsigned:1;", b"offset:8;\tsize:9;\tsigned:1;", None),
    ],
    ids=["commit-renamed", "not-utf8", "commit-size-9"],
)
def test_flipped_header_page_is_one_error(tmp_path, old, new, expected):
    data = V6.read_bytes()
    header = data.index(b"header_page\0")
    at = data.index(old, header)
    bad = tmp_path / "header.dat"
    bad.write_bytes(data[:at] + new + data[at + len(old) :])
    with pytest.raises(InputError) as err:
        read_dat(bad)
    line = err.value.one_line()
    assert line.startswith(f"{bad}@0x")
    assert (expected or "unsupported ring-buffer page header") in line


def test_record_shorter_than_common_fields(tmp_path, layout):
    """The first record cut to one payload word (type_len 1: no room for the pid), the rest of
    its bytes turned into a padding record so that the page stays sound."""
    _dat, cpu, sound = layout
    payload = cpu.file_offset + int(sound.payload[0])
    length = int(sound.length[0])
    assert length >= 12
    word = struct.unpack_from("<I", V6.read_bytes(), payload - 4)[0]
    padding = struct.pack("<II", 29 | 1 << 5, length - 8)
    bad = _edited(tmp_path, {payload - 4: struct.pack("<I", word & ~31 | 1), payload + 4: padding})
    with pytest.raises(InputError) as err:
        read_dat(bad)
    assert err.value.offset == payload
    assert err.value.message == "record of 4 bytes, shorter than the common fields"


def test_time_stamp_beyond_63_bits_is_a_damaged_page(tmp_path, layout):
    _dat, cpu, sound = layout
    bad = _edited(tmp_path, {cpu.file_offset: struct.pack("<Q", 1 << 63)})
    with pytest.warns(InputWarning, match="time stamp beyond 63 bits"):
        decoded = read_dat(bad)
    assert decoded.table.num_rows == RECORDS - int(sound.first[1])
    assert int(decoded.table.column("ts_ns").to_numpy().min()) >= 0


@pytest.mark.parametrize(
    ("usize", "at", "expected"),
    [
        (
            (1 << 30) - 1,
            12,
            "corrupt zstd data in trace.dat (a frame of at most 32768 bytes "
            "where 1073741823 are due)",
        ),
        (1 << 31, 8, "truncated"),
    ],
    ids=["1GiB", "beyond-limit"],
)
def test_crafted_zstd_size_is_refused_before_allocating(tmp_path, usize, at, expected):
    """lost.dat's CPU data is one zstd chunk whose header says 20480 bytes: a header saying
    1 GiB (or beyond the limit) is refused before any buffer of that size exists."""
    dat = open_dat(HOST / "lost.dat")
    cpu = next(c for b in dat.buffers for c in b.cpus if c.pages.size)
    data = bytearray((HOST / "lost.dat").read_bytes())
    assert struct.unpack_from("<II", data, cpu.file_offset) == (1, 3775)
    struct.pack_into("<I", data, cpu.file_offset + 8, usize)
    bad = tmp_path / "zstd.dat"
    bad.write_bytes(bytes(data))
    message, growth_kib = _refusal_and_growth(bad, HOST / "lost.dat")
    if expected == "truncated":
        expected = f"chunk uncompressed size {usize} exceeds the limit {1 << 30}"
    assert message == f"{bad}@{cpu.file_offset + at:#x}: {expected}"
    assert growth_kib < 1 << 17  # under 128 MiB: no 1 GiB buffer was made


@pytest.mark.parametrize("name", ["trace-v6.dat", "trace-v7.dat"])
@pytest.mark.parametrize("clock", ["counter", "uptime", "x86-tsc"])
def test_a_clock_that_counts_no_nanoseconds_is_refused(tmp_path, name, clock):
    """The real file with another clock chosen in its TRACECLOCK option (the option's own list,
    "[local] global counter uptime ... x86-tsc", the brackets moved): its time stamps would be
    cycles or ticks read as nanoseconds, so one error naming the option and the clock."""
    data = (HOST / name).read_bytes()
    listed = data.index(b"[local] global counter uptime perf mono mono_raw boot tai x86-tsc")
    text = b"local global counter uptime perf mono mono_raw boot tai x86-tsc"
    moved = text.replace(clock.encode(), b"[" + clock.encode() + b"]", 1)
    bad = tmp_path / name
    bad.write_bytes(data[:listed] + moved + data[listed + len(moved) :])
    with pytest.raises(InputError) as err:
        read_dat(bad)
    line = err.value.one_line()
    assert line.startswith(f"{bad}@0x")
    assert f"trace clock {clock!r} counts cycles or ticks, not nanoseconds" in line
