"""The reference parsers on every real trace fixture, checked by independent means.

The reference readings are :func:`folio_replay.parsers.text.reference.read_text` (text) and
:func:`folio_replay.parsers.tracedat.trace_cmd.read_dat` (trace.dat through ``trace-cmd report``);
``read_trace`` may route to faster paths, which are tested for equality with these elsewhere."""

from __future__ import annotations

import json
import re
import shutil

import pyarrow as pa
import pytest
from folio_replay.parsers.schema import META_LOST_EVENTS, event_schema, event_table_schema
from folio_replay.parsers.text.reference import read_text
from folio_replay.parsers.tracedat.trace_cmd import read_dat
from parse_fixtures import (
    event_name,
    fixture_id,
    fixture_meta,
    independent_counts,
    raw_lines,
    timestamp_index,
    timestamp_ns,
    trace_fixtures,
)

FIXTURES = trace_fixtures()
needs_trace_cmd = pytest.mark.skipif(
    shutil.which("trace-cmd") is None, reason="trace-cmd reads trace.dat (apt: trace-cmd)"
)
HEX_GROUPS = {"madvise", "process_madvise", "munmap", "syscall"}  # syscall args print as hex
KNOWN_BEHAVIORS = {4: "MADV_DONTNEED", 8: "MADV_FREE", 21: "MADV_PAGEOUT"}
# tlb_flush reasons by their printed names (any case: 6.12 and libtraceevent print "local mm
# shootdown", 6.18 "local MM shootdown").
PRINTED_REASONS = {
    "flush on task switch": "TLB_FLUSH_ON_TASK_SWITCH",
    "remote shootdown": "TLB_REMOTE_SHOOTDOWN",
    "local shootdown": "TLB_LOCAL_SHOOTDOWN",
    "local mm shootdown": "TLB_LOCAL_MM_SHOOTDOWN",
    "remote ipi send": "TLB_REMOTE_SEND_IPI",
    "remote wrong cpu": "TLB_REMOTE_WRONG_CPU",
}


def _params():
    return [
        pytest.param(p, id=fixture_id(p), marks=[needs_trace_cmd] if p.suffix == ".dat" else [])
        for p in FIXTURES
    ]


def reference(path):
    """The reference parse of a fixture."""
    return read_dat(path) if path.suffix == ".dat" else read_text(path)


@pytest.fixture(scope="module", params=_params())
def parsed(request):
    path = request.param
    lines = raw_lines(path)
    return path, reference(path), lines, independent_counts(lines)


def expected_format(path, lines) -> str:
    """The format, told from the file name and its first line, not by the parser's rules."""
    if path.suffix == ".dat":
        return "trace-dat"
    if "perf" in path.name:
        return "perf-script"
    if "report" in path.name:
        return "trace-cmd-report"
    return "tracefs-trace" if lines[0].startswith("# tracer:") else "tracefs-pipe"


def test_there_are_fixtures_of_every_format():
    names = {p.name for p in FIXTURES}
    assert any(n.startswith("perf") for n in names)
    assert any("report" in n for n in names)
    assert any(n.startswith("tracefs-trace") for n in names)
    assert any(n.startswith(("trace_pipe", "tracefs-pipe")) for n in names)
    assert any(n.endswith(".dat") for n in names)


def test_format_detected(parsed):
    path, result, lines, _ = parsed
    assert result.format == expected_format(path, lines)
    assert result.table.schema.equals(event_table_schema())


def test_event_counts_match_an_independent_count(parsed):
    _, result, _, (counts, _, _) = parsed
    assert result.event_counts() == dict(counts)
    assert result.table.num_rows == sum(counts.values()) > 0


def test_lost_events_counted_and_surfaced(parsed):
    path, result, _, (_, lost, _) = parsed
    assert result.lost_events == lost
    assert int(result.table.schema.metadata[META_LOST_EVENTS]) == lost
    meta = fixture_meta(path) or {}
    how = meta.get("how", "")
    if "overrun = " in how:  # the kernel's per-CPU overrun count, recorded when it was made
        assert lost == int(how.split("overrun = ")[1].split(";")[0]) > 0
    if "LOST events (records) = " in how:  # perf report --stats, recorded when it was made
        assert len(result.lost) == int(how.split("LOST events (records) = ")[1]) > 0


def _raw_event_line(path, lines, events, line_no: int) -> str:
    # text: the table's line is the file's line; trace.dat: the record ordinal.
    return events[line_no - 1] if path.suffix == ".dat" else lines[line_no - 1]


def test_every_row_keeps_its_raw_text(parsed):
    path, result, lines, (_, _, events) = parsed
    t = result.table
    for line_no, event, fields in zip(
        t.column("line").to_pylist(), t.column("event").to_pylist(), t.column("fields").to_pylist()
    ):
        raw = _raw_event_line(path, lines, events, line_no)
        assert event_name(raw) == event
        assert fields in raw


def test_prefix_columns_of_sampled_rows(parsed):
    path, result, lines, (_, _, events) = parsed
    n = result.table.num_rows
    for row in result.table.take(list(range(0, n, max(1, n // 200)))).to_pylist():
        raw = _raw_event_line(path, lines, events, row["line"])
        # "[CPU]", or trace-cmd report -l's "CPU" before the latency flags
        assert f"[{row['cpu']:03d}]" in raw or re.search(rf" {row['cpu']}[^\s\d]\S* ", raw)
        # tracefs "COMM-PID", perf "COMM TID" or, with -F +pid, "COMM PID/TID": the thread
        assert re.search(rf"{re.escape(row['comm'])}(-| +| +\d+/){row['pid']} ", raw), (row, raw)
        printed = timestamp_ns(raw)
        if path.suffix == ".dat":  # report rounds to microseconds; the table has -t nanoseconds
            assert abs(row["ts_ns"] - printed) <= 500
        else:
            assert row["ts_ns"] == printed


def _printed(body: str, key: str) -> str | None:
    """The text printed for KEY in an event line's body: after "KEY=", "KEY:" or "KEY: "."""
    tokens = body.replace(",", " ").replace("(", " ").replace(")", " ").split()
    if key == "":
        return tokens[-1]
    for i, token in enumerate(tokens):
        for sep in ("=", ":"):
            if token.startswith(key + sep):
                rest = token[len(key) + 1 :]
                return rest if rest else tokens[i + 1]
    return None


def _expected(group: str, spec, body: str):
    if spec.value == "paren":
        for sep in ("=", ":"):
            if f"{spec.key}{sep}" in body:
                name = body.split(f"{spec.key}{sep}", 1)[1].rsplit(" (", 1)[0]
                return PRINTED_REASONS[name.lower()]
        return None
    if spec.value == "flags":
        return body.split(f"{spec.key}=", 1)[1].replace(" ", "") if f"{spec.key}=" in body else None
    text = _printed(body, spec.key)
    if text is None or spec.type == "string":
        return text
    hex_printed = group in HEX_GROUPS or spec.value == "hex"  # e.g. sys_write count: a6
    number = int(text.removesuffix(spec.suffix), 16 if hex_printed else 0)
    return number - (1 << 64) if number >= 1 << 63 else number


def test_typed_values_of_sampled_events(parsed):
    path, result, lines, (_, _, events) = parsed
    table = result.table
    names = table.column("event").to_pylist()
    checked = 0
    for group in event_schema().groups:
        rows = [i for i, name in enumerate(names) if group.covers(name)]
        sample = pa.array(rows[:: max(1, len(rows) // 40)], type=pa.int64())
        for row in table.take(sample).to_pylist():
            raw = _raw_event_line(path, lines, events, row["line"])
            tokens = raw.split()
            body = raw.split(tokens[timestamp_index(tokens)], 1)[1]
            for spec in group.fields:
                value = row[spec.column]
                expected = _expected(group.name, spec, body)
                if spec.map is not None and spec.value != "paren":
                    number = expected
                    assert value.startswith("MADV_")
                    if number in KNOWN_BEHAVIORS:
                        assert value == KNOWN_BEHAVIORS[number]
                else:
                    assert value == expected, (spec.column, raw)
                checked += 1
    assert checked > 0


def _bench_argvs(command: list[str]) -> list[list[str]]:
    """The argument lists of the folio_bench runs of a fixture's command: the command itself,
    or each ``folio_bench -x V ...`` of a ``sh -c`` script (processes run side by side)."""
    if command and "folio_bench" in command[0]:
        return [command]
    if command[:2] == ["sh", "-c"]:
        return [
            ["folio_bench", *m.group(1).split()]
            for m in re.finditer(r"folio_bench((?:\s+-\w\s+[^\s>&]+)*)", command[2])
        ]
    return []


def _frees_then_pages_out(argv: list[str]) -> bool:
    """Whether a folio_bench run MADV_FREEs its region and then MADV_PAGEOUTs it: an anonymous
    lazyfree mode (-m clean, redirty, partial) reclaimed by its own madvise (-t pageout)."""
    option = dict(zip(argv[1::2], argv[2::2], strict=False))
    return option.get("-m", "clean") in ("clean", "redirty", "partial") and (
        option.get("-t", "pageout") == "pageout"
    )


def test_workload_calls_seen_with_their_real_arguments(parsed):
    """folio_bench -s KIB: MADV_FREE then MADV_PAGEOUT of the KIB region, returning 0; with
    -m partial the region has munmapped holes and madvise returns -ENOMEM (-12) after advising
    the mapped parts (mm/madvise.c, madvise_walk_vmas).  Each folio_bench process is checked
    on its own (the SMP fixture runs two side by side)."""
    path, result, _, _ = parsed
    argvs = [a for a in _bench_argvs((fixture_meta(path) or {}).get("command") or []) if "-s" in a]
    if not argvs:
        pytest.skip("not a folio_bench fixture with a known size")
    if not all(_frees_then_pages_out(a) for a in argvs):
        pytest.skip("reclaim by another path or of other kinds: tests/test_lab_paths.py")
    df = result.to_pandas()
    bench = df[df["comm"] == "folio_bench"]
    calls = bench[bench["event"] == "sys_enter_madvise"]
    if calls.empty:
        pytest.skip("the madvise calls fell in the lost events")
    assert calls["pid"].nunique() == len(argvs)
    for (pid, mine), command in zip(calls.groupby("pid", sort=False), argvs):
        size = int(command[command.index("-s") + 1]) * 1024
        runs = int(command[command.index("-r") + 1]) if "-r" in command else 1
        assert list(mine["madvise.behavior"]) == ["MADV_FREE", "MADV_PAGEOUT"] * runs
        assert set(mine["madvise.len"]) == {size}
        rets = bench[(bench["event"] == "sys_exit_madvise") & (bench["pid"] == pid)]
        assert set(rets["syscall.ret"]) == ({-12} if "partial" in command else {0})


def test_tlb_flush_keeps_minus_one_and_rss_sizes_are_pages(parsed):
    _, result, _, _ = parsed
    df = result.to_pandas()
    pages = df.loc[df["event"] == "tlb_flush", "tlb_flush.pages"]
    if not pages.empty:
        assert pages.min() >= -1
        assert (pages == -1).any() or result.lost_events > 0
    rss = df[df["event"] == "rss_stat"]
    assert (rss["rss_stat.size"] % 4096 == 0).all()
    assert set(rss["rss_stat.member"]) <= {
        "MM_FILEPAGES",
        "MM_ANONPAGES",
        "MM_SWAPENTS",
        "MM_SHMEMPAGES",
    }


def test_to_pandas_keeps_integers_nullable(parsed):
    _, result, _, _ = parsed
    df = result.to_pandas()
    assert str(df["tlb_flush.pages"].dtype) == "Int64"
    assert len(df) == result.table.num_rows
    assert df["ts_ns"].notna().all()


@needs_trace_cmd
def test_trace_dat_and_its_report_text_agree():
    """The same records through trace.dat (report -t) and the report text fixture."""
    from parse_fixtures import HOST

    dat, text = read_dat(HOST / "trace-v6.dat").table, read_text(HOST / "report-v6.txt.gz").table
    assert dat.num_rows == text.num_rows
    for column in ("event", "fields", "pid", "cpu", "comm"):
        assert dat.column(column).equals(text.column(column))
    # report text rounds to microseconds, report -t prints nanoseconds
    diff = pa.compute.subtract(dat.column("ts_ns"), text.column("ts_ns"))
    assert pa.compute.max(pa.compute.abs(diff)).as_py() <= 500
    assert json.loads(dat.schema.metadata[b"folio_replay.lost_markers"]) == []
