"""A capture whose ring buffer overran: the tracefs ``trace`` file has no [LOST] marker, only
fewer entries; the losses the capture recorded in meta.json (per-CPU overrun counts) are the
trace's lost events everywhere, and so are those the file's header says were overwritten
(fixtures/bundles/host/6.18.44-fc-v1300/lost-events, made by fixtures/host/make_host_kinds.sh
with a 64 KiB buffer per CPU)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow.parquet as pq
from click.testing import CliRunner
from folio_replay.parsers import load_bundle
from folio_replay.parsers.table import LostMarker
from folio_replay.parsers.text.fast import read_text_fast
from folio_replay.parsers.text.reference import read_text

from folio_replay.cli import main

BUNDLE = Path(__file__).parent.parent / "fixtures/bundles/host/6.18.44-fc-v1300/lost-events"
META = json.loads((BUNDLE / "meta.json").read_text())
OVERRUN = {int(cpu): n for cpu, n in META["lost_events"]["overrun_per_cpu"].items() if n}


def test_the_trace_itself_has_no_marker_only_fewer_entries() -> None:
    text = gzip.decompress((BUNDLE / "trace.txt.gz").read_bytes()).decode()
    assert "LOST" not in text
    header = next(line for line in text.splitlines() if "entries-in-buffer" in line)
    in_buffer, written = header.split(":")[1].split()[0].split("/")
    assert int(written) > int(in_buffer) and sum(OVERRUN.values()) > 0


def _overwritten() -> tuple[int, int]:
    """(line, written - in buffer) of the trace's header."""
    text = gzip.decompress((BUNDLE / "trace.txt.gz").read_bytes()).decode()
    for number, line in enumerate(text.splitlines(), start=1):
        if "entries-in-buffer" in line:
            in_buffer, written = line.split(":")[1].split()[0].split("/")
            return number, int(written) - int(in_buffer)
    raise AssertionError("no entries-in-buffer header")


def test_a_bare_trace_file_counts_the_events_its_header_says_were_overwritten(
    tmp_path: Path,
) -> None:
    """Outside a bundle the tracefs header is the only record: entries-written less
    entries-in-buffer were overwritten (the capture's per-CPU overrun counts agree)."""
    line, overwritten = _overwritten()
    assert overwritten == sum(OVERRUN.values())
    bare = tmp_path / "trace.txt.gz"
    bare.write_bytes((BUNDLE / "trace.txt.gz").read_bytes())
    for reader in (read_text, read_text_fast):
        trace = reader(str(bare))
        assert trace.lost == [LostMarker(line, -1, overwritten)], reader.__name__
    parsed = CliRunner().invoke(main, ["parse", str(bare), "-o", str(tmp_path / "e.parquet")])
    assert parsed.exit_code == 0
    assert parsed.output.rstrip().endswith(f"; {overwritten} lost events")


def test_the_bundle_trace_counts_the_losses_meta_json_records() -> None:
    trace = load_bundle(BUNDLE).read_trace()
    line, overwritten = _overwritten()
    assert trace.lost == [LostMarker(line, -1, overwritten)]  # meta.json adds none beyond
    assert trace.lost_events == META["lost_events"]["total"]
    bundle = load_bundle(BUNDLE)
    assert bundle.unmarked_losses([LostMarker(line, -1, overwritten - 9)]) == [LostMarker(0, -1, 9)]


def test_losses_already_marked_in_the_trace_are_not_counted_twice() -> None:
    bundle = load_bundle(BUNDLE)
    cpu, count = next(iter(OVERRUN.items()))
    assert bundle.unmarked_losses([LostMarker(7, cpu, count)]) == [
        LostMarker(0, c, n) for c, n in sorted(OVERRUN.items()) if c != cpu
    ]
    assert bundle.unmarked_losses([LostMarker(7, cpu, count - 5)])[0] == LostMarker(0, cpu, 5)


def test_every_command_says_the_trace_lost_events(tmp_path: Path) -> None:
    total = META["lost_events"]["total"]
    runner = CliRunner()
    parsed = runner.invoke(main, ["parse", str(BUNDLE), "-o", str(tmp_path / "e.parquet")])
    assert parsed.exit_code == 0 and parsed.output.rstrip().endswith(f"; {total} lost events")
    metadata = pq.read_schema(tmp_path / "e.parquet").metadata
    assert metadata[b"folio_replay.lost_events"] == str(total).encode()
    replayed = runner.invoke(main, ["replay", str(BUNDLE), "-o", str(tmp_path / "r")])
    assert replayed.exit_code == 0
    assert f"- the trace lost {total} events: counts may fall short" in replayed.output
    # the report's event table says the same as the report
    metadata = pq.read_schema(tmp_path / "r" / "events.parquet").metadata
    assert metadata[b"folio_replay.lost_events"] == str(total).encode()
    validated = runner.invoke(main, ["validate", str(BUNDLE)])
    assert f"warning: {BUNDLE}: the trace lost {total} events" in validated.output
