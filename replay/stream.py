"""Replay a bundle of any length into its report in bounded memory.

The trace is read a chunk at a time (:class:`folio_replay.parsers.stream.EventChunks`) and cut
into quiet segments (:mod:`.reconstruct.segments`); each segment's episodes, folios, MADV_FREE
calls and partial unmaps are appended to the report as soon as they are known, its folios
replayed through the models and their bounds kept, beyond 65,536 rows in a file in the
report's staging directory (:class:`~.spilled_bounds.SpilledBounds`: they grow with the
episodes), read back one model and arch at a time at the end. What needs the whole trace in
memory is kept small: the episodes, the signature checks that recognise the captured kernel's
model, and the model-independent facts validation needs. The report is the one
:meth:`folio_replay.replay.analysis.Analysis.write_report` writes for the same bundle (row
order aside: a record whose folio is still allocated is written once a later segment tells
how its folio ended (a kept one: whether it was zapped), and a process's copy-on-write row once
the trace ends).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
from folio_replay.parsers.bundle import Bundle, load_bundle
from folio_replay.parsers.stream import STREAM_CHUNK_BYTES, EventChunks, stream_metadata
from folio_replay.replay.analysis import captured_machine, has_stats
from folio_replay.replay.archs import ARCH_OF_MACHINE, ARCHS
from folio_replay.replay.models import MODELS
from folio_replay.replay.predict import (
    BoundsTable,
    load_tables,
    predictions_frame,
    replay_folios,
)
from folio_replay.replay.recognise import decide, signature_checks
from folio_replay.replay.reconstruct.partial import COW_COPY, merged_copies
from folio_replay.replay.reconstruct.segments import Segment, Segmenter
from folio_replay.replay.report import ReportWriter, report_metadata
from folio_replay.replay.spilled_bounds import SPILL_ROWS, SpilledBounds
from folio_replay.replay.timing import reclaim_calls, timing_frame
from folio_replay.replay.validate import Facts, validate

from folio_replay.errors import InputError
from folio_replay.outputs import replace_dir
from folio_replay.progress import byte_progress

__all__ = ["FEED_ROWS", "StreamedReplay", "replay_report"]

SPILL_NAME = ".bounds.parquet"  # in the report's staging directory, removed before it is done
TIMING_INPUTS = ["model", "arch", "episode", "traced_time_ns"]  # timing_frame()'s
# events reconstructed at most at a time (a trace.dat batch holds 4 MiB of pages per CPU)
FEED_ROWS = 1 << 18
# a syscall its thread has been silent in for this many feeds no longer holds a segment open
# (a thread blocked in write() would keep the rest of the trace in memory: quiet_cut())
STALE_FEEDS = 1


@dataclass
class StreamedReplay:
    """What a streamed replay found, beyond the report it wrote."""

    report: Path
    model: str  # the captured kernel's model
    model_evidence: str
    lost_events: int
    episodes: int
    folios: int
    segments: int  # quiet stretches the trace was reconstructed in


@dataclass
class _Totals:
    """What the whole trace is needed for, summed segment by segment."""

    machine: str
    candidates: list[str]  # every model the report or the recognition needs
    tables: dict
    bounds: SpilledBounds
    checks: dict[str, Counter] = field(default_factory=dict)
    facts: Facts = field(default_factory=Facts)
    episodes: list[pd.DataFrame] = field(default_factory=list)
    copies: list[pd.DataFrame] = field(default_factory=list)  # each segment's cow_copy rows
    folios: int = 0
    segments: int = 0

    def add(self, segment: Segment, writer: ReportWriter) -> None:
        """Write ``segment``'s rows and add what it tells to the totals."""
        done = [segment.settled] if len(segment.settled) else []
        recon = segment.recon
        if recon is not None:
            copies = (recon.partial["call"] == COW_COPY).to_numpy()
            for name, table in (
                ("episodes", recon.episodes),
                ("lazyfree", recon.lazyfree),
                ("partial", recon.partial[~copies]),
            ):
                writer.add(name, table)
            # a process's copy-on-write row spans the trace: written merged at its end
            self.copies.append(recon.partial[copies])
            self.episodes.append(recon.episodes)
            self.segments += 1
            arch = ARCH_OF_MACHINE[self.machine]
            for model, counts in signature_checks(recon, arch).items():
                self.checks.setdefault(model, Counter()).update(counts)
            self.facts = self.facts + Facts.of(recon, segment.new_ledger())
            done.insert(0, recon.folios[~segment.pending])
        for folios in done:
            if len(folios):
                writer.add("folios", folios)
                self.bounds.add(replay_folios(folios, self.candidates, self.tables))
                self.folios += len(folios)


class _Feeds:
    """The trace's tables cut into feeds of ``rows`` events each, whatever the chunks' sizes:
    a chunk's last few rows wait for the next chunk instead of making a segment of their
    own (each reconstruction has a fixed cost)."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.waiting: pa.Table | None = None

    def add(self, table: pa.Table) -> Iterator[pa.Table]:
        """The whole feeds ``table`` completes, in order."""
        waiting = table if self.waiting is None else pa.concat_tables([self.waiting, table])
        while waiting.num_rows >= self.rows:
            yield waiting.slice(0, self.rows)
            waiting = waiting.slice(self.rows)
        self.waiting = waiting

    def rest(self) -> Iterator[pa.Table]:
        """The rows no whole feed took, as the last feed (none when none are left)."""
        rest, self.waiting = self.waiting, None
        if rest is not None and rest.num_rows:
            yield rest


def replay_report(
    bundle: str | Path | Bundle,
    target: str | Path,
    models: list[str] | None = None,
    archs: list[str] | None = None,
    costs: str | None = None,
    force: bool = False,
    chunk_bytes: int = STREAM_CHUNK_BYTES,
    progress: bool | None = None,
    feed_rows: int = FEED_ROWS,
    spill_rows: int = SPILL_ROWS,
) -> StreamedReplay:
    """Replay ``bundle`` through ``models`` (default: every default model) priced on ``archs``
    (default: all) and write its report to the directory ``target``, reading the trace
    ``chunk_bytes`` of text (or a batch of trace.dat pages per CPU) at a time and reconstructing
    it ``feed_rows`` events at most at a time; beyond ``spill_rows`` rows the models' bounds
    are written to disk until the end (:class:`~.spilled_bounds.SpilledBounds`)."""
    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle)
    if bundle.trace_path is None:
        bundle.read_trace()  # raises the bundle's "no trace file" error
    machine = captured_machine(bundle)
    arch = ARCH_OF_MACHINE[machine]
    wanted_archs = list(dict.fromkeys([arch, *(archs or ARCHS)]))
    wanted = models or [name for name, m in MODELS.items() if m.default]
    # the captured model is known at the end: every model it can be is replayed too
    candidates = list(
        dict.fromkeys([*wanted, *(name for name, m in MODELS.items() if not m.hypothetical)])
    )
    tables = load_tables(wanted_archs, costs)
    found: list[StreamedReplay] = []

    def write(staging: Path) -> None:
        spill = SpilledBounds(staging / SPILL_NAME, tables, spill_rows)
        totals = _Totals(machine, candidates, tables, spill)
        with spill, ReportWriter(staging) as writer:
            chunks = EventChunks(str(bundle.trace_path), chunk_bytes, bundle.unmarked_losses)
            segmenter = Segmenter(machine, bundle.no_swap_device, STALE_FEEDS * feed_rows)
            feeds = _Feeds(feed_rows)
            rows = 0
            with byte_progress(f"replay {bundle.path}", chunks.total, progress) as advance:
                advance(0, 0, chunks.total)
                for table in chunks:
                    writer.add("events", table)
                    rows += table.num_rows
                    for feed in feeds.add(table):
                        for segment in segmenter.feed(feed):
                            totals.add(segment, writer)
                    advance(chunks.position, rows)
                for feed in feeds.rest():
                    for segment in segmenter.feed(feed):
                        totals.add(segment, writer)
                for segment in segmenter.finish():
                    totals.add(segment, writer)
            if not rows:
                raise InputError(bundle.trace_path, "no events in the trace")
            if totals.copies:
                writer.add("partial", merged_copies(pd.concat(totals.copies, ignore_index=True)))
            model, why = decide(bundle.meta, totals.checks)
            episodes = pd.concat(totals.episodes, ignore_index=True)
            own, priced = _write_predictions(
                writer, spill, {model, *wanted}, tables, reclaim_calls(episodes), (model, arch)
            )
            emulated = "qemu_command" in bundle.meta
            if has_stats(bundle):
                deltas = bundle.stats_delta()
                writer.add(
                    "validation", validate(totals.facts, own, deltas, model, arch, "captured")
                )
            writer.add("timing", timing_frame(priced, episodes, model, arch, emulated))
            digests = {name: table.digest for name, table in totals.tables.items()}
            lost = chunks.lost_events
            metadata = report_metadata(
                bundle.meta.get("kernel", ""), digests, emulated, f"{model}: {why}", lost
            )
            writer.close(metadata, stream_metadata(chunks))
        found.append(
            StreamedReplay(
                Path(target), model, why, lost, len(episodes), totals.folios, totals.segments
            )
        )

    replace_dir(Path(target), write, force, inputs=[bundle.path])
    return found[0]


def _write_predictions(
    writer: ReportWriter,
    bounds: SpilledBounds,
    models: set[str],
    tables: dict,
    calls: dict[int, dict[str, int]],
    captured: tuple[str, str],
) -> tuple[BoundsTable, pd.DataFrame]:
    """Write the predictions of ``models`` on every arch of ``tables`` (all at once, or one
    model and arch at a time when the bounds were spilled to disk), in the order
    :func:`predictions_frame` sorts them; return the bounds that hold the ``captured`` (model,
    arch) and, for every row, the columns the timing table reads."""
    own, priced = BoundsTable(), []
    for part in bounds.read(models):
        predictions = predictions_frame(part, tables, calls)
        if len(predictions):
            writer.add("predictions", predictions)
            priced.append(predictions[TIMING_INPUTS])
            if part.has(*captured):
                own = part
    if not priced:  # no folio reclaimed: the table's columns, no rows
        priced.append(predictions_frame(own, tables, calls))
        writer.add("predictions", priced[0])
    return own, pd.concat(priced, ignore_index=True)
