"""export-perfetto on real reports, decoded back with Perfetto's trace protos and checked event
by event against the report: tracks, slices, instants and their counts."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace, TrackEvent
from report_models import pageout_ms

from folio_replay.cli import main
from folio_replay.present.perfetto import SEQUENCE

BUNDLES = Path(__file__).resolve().parent.parent / "fixtures" / "bundles"
MICROBENCH = BUNDLES / "x86_64" / "6.12.117+deb13-cloud-amd64" / "microbench"
MIXED = BUNDLES / "aarch64" / "6.12.117+deb13-cloud-arm64" / "mixed"
BEGIN, END, INSTANT = (
    TrackEvent.TYPE_SLICE_BEGIN,
    TrackEvent.TYPE_SLICE_END,
    TrackEvent.TYPE_INSTANT,
)


def export(bundle: Path, root: Path, *options: str) -> tuple[Path, Trace]:
    """Replay ``bundle``, export its report, decode the trace."""
    report, out = root / bundle.name, root / f"{bundle.name}.pftrace"
    for args in (
        ["replay", str(bundle), "-o", str(report)],
        ["export-perfetto", str(report), "-o", str(out), *options],
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
    trace = Trace()
    trace.ParseFromString(out.read_bytes())
    return report, trace


def tracks(trace: Trace) -> dict[int, str]:
    """uuid -> track path (parent names joined by /)."""
    names = {
        p.track_descriptor.uuid: p.track_descriptor
        for p in trace.packet
        if p.HasField("track_descriptor")
    }

    def path(uuid: int) -> str:
        track = names[uuid]
        return (path(track.parent_uuid) + "/" if track.HasField("parent_uuid") else "") + track.name

    return {uuid: path(uuid) for uuid in names}


def slices(trace: Trace) -> dict[str, list[tuple[int, int, str, int]]]:
    """Per track path: (start, end, name, depth) of each slice, ends matched to begins, in
    time order (a parent before its first child)."""
    paths = tracks(trace)
    open_: dict[int, list] = defaultdict(list)
    out: dict[str, list] = defaultdict(list)
    for packet in trace.packet:
        event = packet.track_event
        if not packet.HasField("track_event") or event.type not in (BEGIN, END):
            continue
        stack = open_[event.track_uuid]
        if event.type == BEGIN:
            stack.append((packet.timestamp, event.name))
        else:
            start, name = stack.pop()
            out[paths[event.track_uuid]].append((start, packet.timestamp, name, len(stack)))
    assert not any(open_.values()), "every slice ends"
    return {path: sorted(rows, key=lambda r: (r[0], r[3])) for path, rows in out.items()}


@pytest.fixture(scope="module")
def microbench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Trace]:
    return export(MICROBENCH, tmp_path_factory.mktemp("perfetto"))


def test_packets_are_one_sequence_of_known_tracks_in_time_order(microbench) -> None:
    _, trace = microbench
    assert {p.trusted_packet_sequence_id for p in trace.packet} == {SEQUENCE}
    known = set(tracks(trace))
    events = [p for p in trace.packet if p.HasField("track_event")]
    assert {p.track_event.track_uuid for p in events} <= known
    stamps = [p.timestamp for p in events]
    assert stamps == sorted(stamps)
    first_event = next(i for i, p in enumerate(trace.packet) if p.HasField("track_event"))
    assert all(p.HasField("track_descriptor") for p in trace.packet[:first_event])


def test_captured_episodes_and_madv_free_match_the_report(microbench) -> None:
    report, trace = microbench
    episodes = pd.read_parquet(report / "episodes.parquet")
    lazyfree = pd.read_parquet(report / "lazyfree.parquet")
    found = slices(trace)
    row = episodes.iloc[0]
    assert len(episodes) == 1
    assert found[f"captured reclaim/madvise_pageout (pid {row['pid']} {row['comm']})"] == [
        (row["start_ns"], row["end_ns"], "madvise_pageout #0: 2048 folios", 0)
    ]
    free = lazyfree.iloc[0]
    assert found[f"captured reclaim/madvise_free (pid {free['pid']} {free['comm']})"] == [
        (free["start_ns"], free["end_ns"], "MADV_FREE: 2048 folios", 0)
    ]


def test_predicted_timelines_last_the_predicted_time_per_model_and_arch(microbench) -> None:
    report, trace = microbench
    predictions = pd.read_parquet(report / "predictions.parquet")
    start = pd.read_parquet(report / "episodes.parquet")["start_ns"].iloc[0]
    found = slices(trace)
    predicted = {path: rows for path, rows in found.items() if path.startswith("predicted")}
    assert len(predicted) == len(predictions.groupby(["model", "arch"]))  # 3 archs each
    for (model, arch), rows in predictions.groupby(["model", "arch"]):
        suffix = " (captured)" if model == "unbatched" else ""
        total = round(float(rows["time_ns"].sum()))
        (episode, size) = predicted[f"predicted reclaim/{model} on {arch}{suffix}"]
        assert episode[:2] == (start, start + total) and episode[3] == 0
        assert episode[2].startswith("#0: 2048 folios, ")
        assert size == (start, start + total, "64K ×2048", 1)  # one size, nested
    x86 = predicted["predicted reclaim/unbatched on x86 (captured)"][0]
    assert x86[2] == f"#0: 2048 folios, {pageout_ms(report, 'x86', 'unbatched'):#.3g} ms"


def test_every_captured_event_is_an_instant_on_its_cpu(microbench) -> None:
    report, trace = microbench
    events = pd.read_parquet(report / "events.parquet", columns=["ts_ns", "cpu", "event"])
    paths = tracks(trace)
    instants = [
        (paths[p.track_event.track_uuid], p.timestamp, p.track_event.name)
        for p in trace.packet
        if p.HasField("track_event") and p.track_event.type == INSTANT
    ]
    on_cpus = [i for i in instants if i[0].startswith("captured events/")]
    assert len(on_cpus) == len(events) == 76070
    assert Counter(
        (f"captured events/CPU {c}", t, e) for t, c, e in events.itertuples(index=False)
    ) == Counter(on_cpus)
    first = next(
        p for p in trace.packet if p.HasField("track_event") and p.track_event.type == INSTANT
    )
    assert [a.name for a in first.track_event.debug_annotations] == ["pid", "comm", "fields"]


def test_sizes_nest_in_order_and_events_can_be_left_out(tmp_path: Path) -> None:
    report, trace = export(MIXED, tmp_path, "--no-events")
    predictions = pd.read_parquet(report / "predictions.parquet")
    rows = slices(trace)["predicted reclaim/batched on riscv"]
    episode, *sizes = rows
    assert [name for _, _, name, _ in sizes] == ["16K ×4", "64K ×31", "2048K ×64"]
    assert [depth for *_, depth in sizes] == [1, 1, 1]
    assert sizes[0][0] == episode[0] and sizes[-1][1] == episode[1]  # back to back, filling it
    riscv = predictions[(predictions["model"] == "batched") & (predictions["arch"] == "riscv")]
    # each size ends at the rounded running total of the predicted times
    assert [end - episode[0] for _, end, _, _ in sizes] == [
        round(float(t)) for t in riscv.sort_values("size_kb")["time_ns"].cumsum()
    ]
    assert not any(path.startswith("captured events") for path in tracks(trace).values())
