"""The fast text parser gives exactly the reference parser's table, markers and errors on every
real text fixture, and on bad input made from them."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import test_parse_errors as bad_inputs
from folio_replay.parsers.schema import META_LOST_EVENTS
from folio_replay.parsers.text.fast import read_text_fast
from folio_replay.parsers.text.reference import read_text
from parse_fixtures import fixture_id, trace_fixtures

from folio_replay.errors import InputError

TEXT_FIXTURES = [p for p in trace_fixtures() if p.suffix != ".dat"]


def _table_diff(ref: pa.Table, fast: pa.Table) -> list[str]:
    """Names of the columns that differ (empty when the tables are equal)."""
    return [name for name in ref.column_names if not ref.column(name).equals(fast.column(name))]


@pytest.mark.parametrize("path", TEXT_FIXTURES, ids=fixture_id)
def test_same_table_as_reference(path: Path):
    ref = read_text(path)
    fast = read_text_fast(path)
    assert fast.format == ref.format
    assert fast.table.schema == ref.table.schema
    assert _table_diff(ref.table, fast.table) == []
    assert fast.table.equals(ref.table, check_metadata=True)
    assert fast.lost == ref.lost


@pytest.mark.parametrize("path", TEXT_FIXTURES[:4], ids=fixture_id)
def test_small_chunks_give_the_same_table(path: Path):
    """Chunk boundaries (here every 64 KiB) do not change a row."""
    ref = read_text(path)
    fast = read_text_fast(path, chunk_bytes=64 << 10)
    assert fast.table.equals(ref.table, check_metadata=True)


def test_lost_markers_are_counted():
    path = bad_inputs.HOST / "lost-report.txt.gz"
    fast = read_text_fast(path)
    assert fast.lost_events == 1513
    assert fast.table.schema.metadata[META_LOST_EVENTS] == b"1513"


def test_typed_values_of_a_real_line():
    """One real tracefs line, read through the fast path: the typed values it prints."""
    path = bad_inputs.HOST / "tracefs-trace.txt.gz"
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    number = next(i for i, t in enumerate(lines, 1) if " rss_stat: " in t)
    text = lines[number - 1]
    row = read_text_fast(path).to_pandas().set_index("line").loc[number]
    fields = dict(kv.split("=") for kv in text.split(" rss_stat: ")[1].split())
    assert row["event"] == "rss_stat"
    assert row["rss_stat.mm_id"] == int(fields["mm_id"])
    assert row["rss_stat.curr"] == int(fields["curr"])
    assert row["rss_stat.member"] == fields["type"]
    assert row["rss_stat.size"] == int(fields["size"].removesuffix("B"))
    assert row["pid"] == int(text.split("[")[0].rsplit("-", 1)[1])


TEXT_BAD = [
    bad_inputs.truncated_line,
    bad_inputs.truncated_gzip,
    bad_inputs.missing_field,
    bad_inputs.foreign_line,
    bad_inputs.binary_garbage,
    bad_inputs.empty_file,
    bad_inputs.unknown_format,
]


@pytest.mark.parametrize("make", TEXT_BAD, ids=lambda f: f.__name__)
def test_same_error_as_reference(tmp_path: Path, make):
    bad, expected = make(tmp_path)
    with pytest.raises(InputError) as ref:
        read_text(bad)
    with pytest.raises(InputError) as fast:
        read_text_fast(bad)
    assert fast.value.one_line() == ref.value.one_line()
    assert expected in fast.value.one_line()


def _both_fail_on_edited_line(
    tmp_path: Path, find: bytes, old: bytes, new: bytes, after: int = 20
) -> tuple[Path, int, str]:
    """The real tracefs fixture with ``old`` replaced by ``new`` in its first line holding
    ``find`` after line index ``after``; both parsers must refuse it with the same
    one-line error. Returns the file, the edited line's index and that error."""
    lines = gzip.decompress(bad_inputs.TRACE.read_bytes()).splitlines(keepends=True)
    i = bad_inputs._first(lines, find, after=after)
    lines[i] = lines[i].replace(old, new)
    bad = tmp_path / "edited.txt"
    bad.write_bytes(b"".join(lines))
    with pytest.raises(InputError) as ref:
        read_text(bad)
    with pytest.raises(InputError) as fast:
        read_text_fast(bad)
    assert fast.value.one_line() == ref.value.one_line()
    return bad, i, fast.value.one_line()


def test_invalid_utf8_names_its_line(tmp_path: Path):
    lines = gzip.decompress(bad_inputs.TRACE.read_bytes()).splitlines()
    bad, i, error = _both_fail_on_edited_line(
        tmp_path, b"rss_stat:", b"rss_stat", b"rss\xffstat", after=len(lines) // 2
    )
    assert error == f"{bad}:{i + 1}: not UTF-8 text (binary data?)"


def test_upper_case_hex_prefix_fails_like_reference(tmp_path: Path):
    """ "0X" is not the "0x" of the reference pattern: a real page_fault_user line whose
    address is printed "0X..." fails on the same line, with the same message, in both."""
    _, i, error = _both_fail_on_edited_line(
        tmp_path, b"page_fault_user: address=0x", b"address=0x", b"address=0X"
    )
    assert f":{i + 1}: cannot parse page_fault_user: no 'address'" in error


def test_non_ascii_blank_read_like_reference(tmp_path: Path):
    """The reference's ``\\s`` matches U+00A0: in a real line whose comm is padded with one,
    both readers take the padding off the comm."""
    lines = gzip.decompress(bad_inputs.TRACE.read_bytes()).splitlines(keepends=True)
    i = bad_inputs._first(lines, b"rss_stat:", after=len(lines) // 2)
    lines[i] = lines[i].replace(b" ", "\u00a0".encode(), 1)
    odd = tmp_path / "nbsp.txt"
    odd.write_bytes(b"".join(lines))
    ref, fast = read_text(odd), read_text_fast(odd)
    assert fast.table.equals(ref.table)
    row = fast.table.filter(pc.equal(fast.table.column("line"), i + 1))
    assert row.column("comm").to_pylist() == ["folio_bench"]
    assert lines[i].startswith("\u00a0".encode())


def test_crlf_lines_read_like_reference(tmp_path: Path):
    data = gzip.decompress(bad_inputs.TRACE.read_bytes()).replace(b"\n", b"\r\n")
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(data)
    ref, fast = read_text(crlf), read_text_fast(crlf)
    assert fast.table.num_rows == ref.table.num_rows > 0
    assert fast.table.equals(ref.table)
    assert not np.any(
        np.char.endswith(np.array(fast.table.column("fields").to_pylist(), str), "\r")
    )


def test_perf_pid_slash_tid_reads_as_the_default_text():
    """``perf script -F +pid`` prints ``COMM PID/TID``; the same perf.data printed by default
    prints ``COMM TID`` (fixtures/host/make_perf_threads.sh): the two read to one table, whose
    pid column holds the threads (tracefs's pid), the spinning helper thread among them."""
    host = bad_inputs.HOST
    with_pid = read_text_fast(host / "perf-threads-pid.txt.gz")
    default = read_text_fast(host / "perf-threads-tid.txt.gz")
    assert with_pid.format == default.format == "perf-script"
    assert _table_diff(default.table, with_pid.table) == []
    assert with_pid.table.num_rows > 13_000
    threads = pc.value_counts(with_pid.table.column("pid")).to_pylist()
    assert len(threads) == 2 and min(t["counts"] for t in threads) > 0


def test_perf_side_band_records_are_skipped():
    """``perf script --show-task-events --show-mmap-events`` of the same perf.data puts
    PERF_RECORD_COMM/EXIT/MMAP lines between the events: skipped, the events read as the
    default text's (each on its own line number), no event lost."""
    host = bad_inputs.HOST
    raw = gzip.decompress((host / "perf-threads-sideband.txt.gz").read_bytes()).decode()
    side_band = [n for n, line in enumerate(raw.splitlines(), 1) if "PERF_RECORD_" in line]
    assert len(side_band) >= 4
    with_side_band = read_text_fast(host / "perf-threads-sideband.txt.gz")
    default = read_text_fast(host / "perf-threads-tid.txt.gz")
    assert with_side_band.lost_events == default.lost_events == 0
    assert not set(side_band) & set(with_side_band.table.column("line").to_pylist())
    others = [name for name in default.table.column_names if name != "line"]
    assert _table_diff(default.table.select(others), with_side_band.table.select(others)) == []


def test_trace_cmd_report_ts_diff_reads_as_the_plain_report():
    """``trace-cmd report --ts-diff`` of trace-v6.dat (fixtures/host/make_report_variants.sh)
    prints "(+NS)" after each timestamp (blanks on the first line): the same table as the plain
    report of that file, by the fast parser and by the reference."""
    host = bad_inputs.HOST
    plain = read_text(host / "report-v6.txt.gz")
    diffs = read_text_fast(host / "report-v6-ts-diff.txt.gz")
    assert diffs.format == plain.format == "trace-cmd-report"
    assert plain.table.num_rows == 14_860
    assert _table_diff(plain.table, diffs.table) == []


def test_trace_cmd_report_latency_format_reads_as_the_plain_report():
    """``trace-cmd report -l`` of trace-v6.dat (make_report_variants.sh): "COMM-PID CPUFLAGS
    TIMESTAMP:" with the comm cut to 8 characters: the plain report's table but for the comm,
    which is its first 8 characters (the fast scanner reads these lines as the reference's
    pattern does)."""
    host = bad_inputs.HOST
    plain = read_text(host / "report-v6.txt.gz")
    latency = read_text_fast(host / "report-v6-latency.txt.gz")
    assert latency.format == "trace-cmd-report"
    assert _table_diff(plain.table, latency.table) == ["comm"]
    cut = [name[:8] for name in plain.table.column("comm").to_pylist()]
    assert latency.table.column("comm").to_pylist() == cut
    assert "folio_bench" in plain.table.column("comm").to_pylist() and "folio_be" in cut


def test_a_trace_clock_without_nanoseconds_is_refused_by_both_parsers():
    """fixtures/host/clock/tracefs-trace-counter.txt.gz (make_text_fixtures.sh
    tracefs-trace-counter): a real `trace` file of trace_clock=counter, whose time stamps are
    integers: both parsers refuse it with one error naming its first event line and the
    clock, not as a trace of unknown format."""
    path = bad_inputs.HOST / "clock" / "tracefs-trace-counter.txt.gz"
    errors = []
    for read in (read_text, read_text_fast):
        with pytest.raises(InputError) as err:
            read(path)
        errors.append(err.value.one_line())
    assert errors[0] == errors[1]
    assert errors[0] == (
        f"{path}:13: time stamps without a fraction: the trace clock counts cycles or ticks "
        "(counter, uptime, x86-tsc), not nanoseconds; trace with trace_clock local, mono or boot"
    )
