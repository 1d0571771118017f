"""``folio-replay parse``: a trace or a bundle's trace into an events Parquet file."""

from __future__ import annotations

from pathlib import Path

import click

from folio_replay.errors import InputError
from folio_replay.parsers import load_bundle
from folio_replay.parsers.bundle import TRACE_FILES
from folio_replay.parsers.stream import StreamResult, stream_parquet


def _trace_of(source: Path) -> Path:
    """The trace file itself, or a bundle directory's trace."""
    if not source.is_dir():
        return source
    bundle = load_bundle(source)
    if bundle.trace_path is None:
        raise InputError(source, "bundle has no trace file (" + ", ".join(TRACE_FILES) + ")")
    return bundle.trace_path


def summary(result: StreamResult) -> str:
    """One line: events in all, per type, and lost events."""
    counts = ", ".join(f"{name} {n}" for name, n in result.event_counts().items())
    lost = f"{result.lost_events} lost events"
    if result.lost_unknown:
        lost += f" (+{result.lost_unknown} markers without a count)"
    return (
        f"{result.path} ({result.format}): {result.rows} events"
        f"{' (' + counts + ')' if counts else ''}; {lost}"
    )


@click.command("parse")
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="Parquet file to write (the event table).",
)
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
def command(source: Path, out: Path, force: bool) -> None:
    """Parse SOURCE (a trace file or a bundle directory) into an events Parquet file.

    Trace formats: tracefs trace / trace_pipe text, trace-cmd report text, perf script text
    (each optionally gzip-compressed) and trace.dat (v6/v7, zstd sections included).  Any size:
    the trace is read in chunks, one Parquet row group each; progress shows on a terminal.
    """
    result = stream_parquet(_trace_of(source), out, force=force)
    click.echo(summary(result))
