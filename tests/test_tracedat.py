"""The native trace.dat decoder against trace-cmd's own reading of the same real files.

Every real trace.dat fixture (v6, v7, v7 zstd, and one with lost events) is decoded natively
and compared event by event with the parse of ``trace-cmd report -t`` text (ts, cpu, pid,
comm, event, every typed column); ``fields`` is the raw record in the native table and the
print-fmt text in the report, so it is compared by what it holds, not by its rendering.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from folio_replay.parsers.schema import META_LOST_EVENTS
from folio_replay.parsers.text.reference import read_text
from folio_replay.parsers.tracedat.container import open_dat
from folio_replay.parsers.tracedat.read import META_DAMAGED, read_dat
from folio_replay.parsers.tracedat.ring import decode_pages
from parse_fixtures import HOST, fixture_id, trace_fixtures

from folio_replay.errors import InputError, InputWarning

DAT_FIXTURES = [p for p in trace_fixtures() if p.suffix == ".dat"]
needs_trace_cmd = pytest.mark.skipif(
    shutil.which("trace-cmd") is None,
    reason="the reference reading runs trace-cmd (apt: trace-cmd)",
)


def _without_fields(table: pa.Table) -> pa.Table:
    return table.drop_columns(["fields"])


@needs_trace_cmd
@pytest.mark.parametrize("path", DAT_FIXTURES, ids=fixture_id)
def test_equals_trace_cmd_report(path: Path):
    from folio_replay.parsers.tracedat.trace_cmd import read_dat as report_read_dat

    ref = report_read_dat(path)
    native = read_dat(path)
    assert native.table.num_rows == ref.table.num_rows > 0
    diff = [
        c
        for c in ref.table.column_names
        if c != "fields" and not ref.table.column(c).equals(native.table.column(c))
    ]
    assert diff == []
    assert native.table.schema.metadata[META_LOST_EVENTS] == str(ref.lost_events).encode()
    assert [(m.cpu, m.count) for m in native.lost] == [(m.cpu, m.count) for m in ref.lost]


@pytest.mark.parametrize(
    ("version", "rows"), [("v6", 14860), ("v7", 14860), ("v7-zstd", 14860), ("smp-v7-zstd", 23136)]
)
def test_equals_committed_report_text(version: str, rows: int):
    """The committed ``trace-cmd report`` text of the same file (times rounded to microseconds,
    as trace-cmd prints them without -t); runs without trace-cmd installed.  ``smp-v7-zstd`` has
    records on both CPUs interleaved in time, so its row order checks the merge of the per-CPU
    streams."""
    native = read_dat(HOST / f"trace-{version}.dat").table
    ref = read_text(HOST / f"report-{version}.txt.gz").table
    assert native.num_rows == ref.num_rows == rows
    ns = native.column("ts_ns").to_numpy()
    assert ((ns + 500) // 1000 * 1000 == ref.column("ts_ns").to_numpy()).all()
    for name in ref.column_names:
        if name not in ("fields", "ts_ns", "line"):
            assert native.column(name).equals(ref.column(name)), name


def test_cpu_streams_merged_as_trace_cmd_counted():
    """trace-smp-v7-zstd.dat: records per CPU and CPU changes in time order, as counted in
    ``trace-cmd report`` output when the fixture was made (its side file's ``records``)."""
    counted = dict(
        item.split("=")
        for item in json.loads((HOST / "trace-smp-v7-zstd.json").read_text())["records"].split()
    )
    cpu = read_dat(HOST / "trace-smp-v7-zstd.dat").table.column("cpu").to_numpy()
    assert [int(counted[f"cpu{c}"]) for c in (0, 1)] == [(cpu == 0).sum(), (cpu == 1).sum()]
    assert min(int(counted["cpu0"]), int(counted["cpu1"])) >= 2000
    assert int(counted["cpu_switches"]) == (np.diff(cpu) != 0).sum() > 1000


def test_versions_decode_alike():
    """v6, v7 and zstd-compressed v7 written from one capture hold the same records."""
    tables = [
        _without_fields(read_dat(HOST / f"trace-{v}.dat").table) for v in ("v6", "v7", "v7-zstd")
    ]
    assert tables[0].equals(tables[1]) and tables[0].equals(tables[2])
    assert read_dat(HOST / "trace-v7-zstd.dat").dat.compression == "zstd"


def test_fields_hold_the_binary_record():
    table = read_dat(HOST / "trace-v6.dat").table.to_pandas()
    row = table[table.event == "rss_stat"].iloc[0]
    fields = dict(kv.split("=") for kv in row["fields"].split())
    assert set(fields) == {"mm_id", "curr", "member", "size"}
    assert int(fields["size"], 16) == row["rss_stat.size"]
    assert int(fields["mm_id"], 16) == row["rss_stat.mm_id"]
    assert int(fields["member"], 16) == 1 and row["rss_stat.member"] == "MM_ANONPAGES"


def test_lost_events_from_page_flags():
    native = read_dat(HOST / "lost.dat")
    assert [(m.cpu, m.count) for m in native.lost] == [(0, 1513)]
    assert native.table.schema.metadata[META_LOST_EVENTS] == b"1513"


def test_container_facts():
    dat = open_dat(HOST / "trace-v7.dat")
    assert dat.version == 7 and dat.page_size == 4096 and dat.long_size == 8
    assert dat.header_page["commit"] == (8, 8) and dat.header_page["data"][0] == 16
    with_data = [b.name for b in dat.buffers if any(c.pages.size for c in b.cpus)]
    assert with_data == ["folio-fixture-12271"]  # the private instance of make_dat.sh


def test_truncated_file_names_the_offset(tmp_path: Path):
    data = (HOST / "lost.dat").read_bytes()
    cut = tmp_path / "cut.dat"
    cut.write_bytes(data[:300_000])
    with pytest.raises(InputError) as err:
        read_dat(cut)
    assert err.value.offset is not None
    assert "truncated trace.dat" in err.value.one_line()


def test_corrupt_page_is_skipped_and_reported(tmp_path: Path):
    """A commit larger than the page, written into a real page header: that page's records
    are dropped, the loss is a marker without a count, and a warning names the offset."""
    dat = open_dat(HOST / "trace-v6.dat")
    cpu = next(c for b in dat.buffers for c in b.cpus if c.pages.size)
    sound = decode_pages("x", cpu.pages, dat.page_size, dat.header_page, cpu.file_offset)
    on_first_page = int(sound.first[1])
    data = bytearray((HOST / "trace-v6.dat").read_bytes())
    data[cpu.file_offset + 8 : cpu.file_offset + 16] = struct.pack("<Q", 8000)
    bad = tmp_path / "bad.dat"
    bad.write_bytes(bytes(data))
    with pytest.warns(InputWarning) as caught:
        decoded = read_dat(bad)
    assert on_first_page > 0
    assert decoded.table.num_rows == 14860 - on_first_page
    assert [(m.cpu, m.count) for m in decoded.lost] == [(0, None)]
    (warning,) = caught
    assert warning.message.offset == cpu.file_offset
    assert "commit exceeds the page" in str(warning.message)
    assert b"page commit exceeds the page" in decoded.table.schema.metadata[META_DAMAGED]


def test_not_a_trace_dat(tmp_path: Path):
    bad = tmp_path / "x.dat"
    bad.write_bytes((HOST / "trace-v6.dat").read_bytes()[3:4096])
    with pytest.raises(InputError) as err:
        read_dat(bad)
    assert err.value.one_line() == f"{bad}@0x0: not a trace.dat (bad magic)"
