"""``folio-replay parse``: a trace or a bundle's trace into an events Parquet file."""

from __future__ import annotations

import os
from pathlib import Path

import click
import pyarrow.parquet as pq

from folio_replay.errors import InputError
from parsers import load_bundle, read_trace
from parsers.table import ParsedTrace


def _parse_input(source: Path) -> ParsedTrace:
    if source.is_dir():
        return load_bundle(source).read_trace()
    return read_trace(source)


def write_parquet(parsed: ParsedTrace, out: Path, force: bool) -> None:
    """Write the event table to ``out`` through a temporary name (no overwrite unless force)."""
    if out.exists() and not force:
        raise InputError(out, "already exists (use --force to overwrite)")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(parsed.table, tmp)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise


def summary(parsed: ParsedTrace) -> str:
    """One line: events in all, per type, and lost events."""
    counts = ", ".join(f"{name} {n}" for name, n in parsed.event_counts().items())
    lost = f"{parsed.lost_events} lost events"
    if parsed.lost_unknown:
        lost += f" (+{parsed.lost_unknown} markers without a count)"
    return (f"{parsed.path} ({parsed.format}): {parsed.table.num_rows} events"
            f"{' (' + counts + ')' if counts else ''}; {lost}")


@click.command("parse")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--output", "out", required=True, type=click.Path(path_type=Path),
              help="Parquet file to write (the event table).")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
def command(source: Path, out: Path, force: bool) -> None:
    """Parse SOURCE (a trace file or a bundle directory) into an events Parquet file.

    Trace formats: tracefs trace / trace_pipe text, trace-cmd report text, perf script text
    (each optionally gzip-compressed) and trace.dat (read with trace-cmd report).
    """
    parsed = _parse_input(source)
    write_parquet(parsed, out, force)
    click.echo(summary(parsed))
