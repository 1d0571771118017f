"""A report as a Perfetto trace (native protobuf, built with the ``perfetto`` package's
``TraceProtoBuilder``) that ui.perfetto.dev opens: captured and predicted reclaim side by side.

Tracks (TrackEvent, one packet sequence):

* ``captured reclaim``: one child track per episode kind and pid, a slice per episode (its
  measured window) named with its large-folio count; MADV_FREE calls as slices and partial
  unmaps as instants on their own tracks;
* ``predicted reclaim``: one child track per model and arch, a slice per episode starting
  where the captured episode starts and lasting the predicted time (cost tables, without
  tracing), with one nested slice per folio size;
* ``captured events``: one child track per CPU, every event of the trace as an instant with
  its pid, comm and fields (left out with ``events=False``).

Timestamps are the trace's clock in ns.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import TrackEvent
from perfetto.trace_builder.proto_builder import TraceProtoBuilder

from folio_replay.outputs import replace_file
from folio_replay.present import units
from folio_replay.present.report import ALL_TABLES, Report, load_report

__all__ = ["SEQUENCE", "TrackEvents", "export_perfetto", "report_trace"]

SEQUENCE = 1  # trusted_packet_sequence_id of every packet
CAPTURED, PREDICTED, EVENTS = "captured reclaim", "predicted reclaim", "captured events"


def _uuid(*parts: object) -> int:
    """A stable 63-bit track uuid from the track's path."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@dataclass
class TrackEvents:
    """Tracks and their events, turned into packets in time order by :meth:`packets`."""

    tracks: dict[int, tuple[str, int | None]] = field(default_factory=dict)
    events: list[tuple[int, int, int, str, dict]] = field(default_factory=list)

    def track(self, name: str, parent: int | None = None) -> int:
        """The uuid of the track ``name`` under ``parent`` (made on first use)."""
        uuid = _uuid(parent, name)
        self.tracks.setdefault(uuid, (name, parent))
        return uuid

    def slice(self, track: int, start: int, end: int, name: str, args: dict) -> None:
        """A slice [start, end] on ``track``; slices added inside it nest."""
        self.events.append((start, TrackEvent.TYPE_SLICE_BEGIN, track, name, args))
        self.events.append((max(end, start), TrackEvent.TYPE_SLICE_END, track, "", {}))

    def instant(self, track: int, ts: int, name: str, args: dict) -> None:
        """An instant event at ``ts``."""
        self.events.append((ts, TrackEvent.TYPE_INSTANT, track, name, args))

    def packets(self, builder: TraceProtoBuilder) -> None:
        """Track descriptors first, then the events sorted by time (stable: a slice's end
        comes before the next slice's begin at the same time, children end before parents)."""
        for uuid, (name, parent) in self.tracks.items():
            packet = builder.add_packet()
            packet.trusted_packet_sequence_id = SEQUENCE
            packet.track_descriptor.uuid = uuid
            packet.track_descriptor.name = name
            if parent is not None:
                packet.track_descriptor.parent_uuid = parent
        for ts, kind, track, name, args in sorted(self.events, key=lambda event: event[0]):
            packet = builder.add_packet()
            packet.trusted_packet_sequence_id = SEQUENCE
            packet.timestamp = int(ts)
            packet.track_event.type = kind
            packet.track_event.track_uuid = track
            if name:
                packet.track_event.name = name
            for key, value in args.items():
                annotation = packet.track_event.debug_annotations.add()
                annotation.name = key
                if isinstance(value, bool):
                    annotation.bool_value = value
                elif isinstance(value, int):
                    annotation.int_value = value
                elif isinstance(value, float):
                    annotation.double_value = value
                else:
                    annotation.string_value = str(value)


def _folio_counts(report: Report) -> pd.Series:
    folios = report["folios"]
    return folios.groupby("episode").size() if len(folios) else pd.Series(dtype="int64")


def _captured(report: Report, out: TrackEvents) -> None:
    """Episodes, MADV_FREE calls and partial unmaps as the trace shows them."""
    root = out.track(CAPTURED)
    counts = _folio_counts(report)
    for row in report["episodes"].to_dict("records"):
        track = out.track(f"{row['kind']} (pid {row['pid']} {row['comm']})", root)
        folios = int(counts.get(row["episode"], 0))
        name = f"{row['kind']} #{row['episode']}: {folios} folios"
        args = {"episode": int(row["episode"]), "folios": folios}
        for key in ("nr_reclaimed", "captured_mode", "duration_ns"):
            if key in row and pd.notna(row[key]):
                args[key] = row[key] if isinstance(row[key], str) else int(row[key])
        if pd.notna(row["end_ns"]):
            out.slice(track, int(row["start_ns"]), int(row["end_ns"]), name, args)
        else:
            out.instant(track, int(row["start_ns"]), name + " (no end in the trace)", args)
    for row in report["lazyfree"].to_dict("records"):
        track = out.track(f"madvise_free (pid {row['pid']} {row['comm']})", root)
        name = f"MADV_FREE: {int(row['folios'])} folios"
        out.slice(track, int(row["start_ns"]), int(row["end_ns"]), name, {"folios": row["folios"]})
    for row in report["partial"].to_dict("records"):
        track = out.track(f"{row['call']} partial unmaps (pid {row['pid']})", root)
        cut = units.bounds(row["partial_low"], row["partial_high"])
        name = f"{row['call']}: {cut} {units.size(row['size_kb'])} folios cut"
        out.instant(track, int(row["start_ns"]), name, {"size_kb": int(row["size_kb"])})


def _predicted(report: Report, out: TrackEvents) -> None:
    """Each model × arch: a slice per episode lasting its predicted time, sizes nested."""
    predictions = report["predictions"]
    if predictions.empty:
        return
    root = out.track(PREDICTED)
    starts = report["episodes"].set_index("episode")["start_ns"]
    for (model, arch), rows in predictions.groupby(["model", "arch"], sort=False):
        label = f"{model} on {arch}" + (" (captured)" if model == report.captured_model else "")
        track = out.track(label, root)
        for episode, sizes in rows.groupby("episode", sort=True):
            start = int(starts[episode])
            sizes = sizes.sort_values("size_kb")
            # the size slices end at the rounded running total: back to back, filling the episode
            ends = [start + round(t) for t in sizes["time_ns"].astype(float).cumsum()]
            total = ends[-1] - start
            out.slice(
                track,
                start,
                start + total,
                f"#{episode}: {int(sizes['folios'].sum())} folios, {units.duration(total)}",
                {
                    "episode": int(episode),
                    "time_ns": total,
                    "split_deferred_low": int(sizes["split_deferred_low"].sum()),
                    "split_deferred_high": int(sizes["split_deferred_high"].sum()),
                },
            )
            at = start
            for size, end in zip(sizes.to_dict("records"), ends):
                out.slice(
                    track,
                    at,
                    end,
                    f"{units.size(size['size_kb'])} ×{int(size['folios'])}",
                    {
                        "split_deferred": units.bounds(
                            size["split_deferred_low"], size["split_deferred_high"]
                        ),
                        "flushes": units.bounds(size["flushes_low"], size["flushes_high"]),
                    },
                )
                at = end


def _events(path: Path, out: TrackEvents) -> None:
    """Every captured event as an instant on its CPU's track."""
    root = out.track(EVENTS)
    columns = ["ts_ns", "cpu", "pid", "comm", "event", "fields"]
    table = pq.read_table(path, columns=columns).to_pandas()
    for cpu, rows in table.groupby("cpu", sort=True):
        track = out.track(f"CPU {cpu}", root)
        for ts, pid, comm, event, fields in zip(
            rows["ts_ns"], rows["pid"], rows["comm"], rows["event"], rows["fields"]
        ):
            out.instant(
                track, int(ts), str(event), {"pid": int(pid), "comm": comm, "fields": fields}
            )


def report_trace(report: Report, events: bool = True) -> bytes:
    """The serialized Perfetto trace of ``report`` (``events``: with the captured events)."""
    out = TrackEvents()
    _captured(report, out)
    _predicted(report, out)
    if events and (report.path / "events.parquet").is_file():
        _events(report.path / "events.parquet", out)
    builder = TraceProtoBuilder()
    out.packets(builder)
    return builder.serialize()


def export_perfetto(
    source: str | Path, target: str | Path, force: bool = False, events: bool = True
) -> Path:
    """Write the Perfetto trace of the report directory ``source`` to ``target``."""
    data = report_trace(load_report(source, ALL_TABLES), events)
    return replace_file(Path(target), lambda tmp: tmp.write_bytes(data), force, inputs=[source])
