"""``folio-replay parse``: a trace or a bundle's trace into an events Parquet file."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from folio_replay.errors import InputError
from folio_replay.parsers.stream import StreamResult, UnmarkedLosses, stream_parquet
from folio_replay.parsers.tracedat.read import TRACE_DAT
from folio_replay.progress import Steps


def _trace_of(source: Path) -> tuple[Path, UnmarkedLosses | None]:
    """The trace file itself, or a bundle directory's trace with the losses its meta.json
    records beyond the trace's markers."""
    if not source.is_dir():
        return source, None
    from folio_replay.parsers.bundle import TRACE_FILES, load_bundle  # pandas: bundles only

    bundle = load_bundle(source)
    if bundle.trace_path is None:
        raise InputError(source, "bundle has no trace file (" + ", ".join(TRACE_FILES) + ")")
    return bundle.trace_path, bundle.unmarked_losses


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
@click.option(
    "--cross-check",
    is_flag=True,
    help="trace.dat only: read it again with trace-cmd's own library (its Python bindings, "
    "where they import) and compare every record; exit 1 when they differ.",
)
def command(source: Path, out: Path, force: bool, cross_check: bool) -> None:
    """Parse SOURCE (a trace file or a bundle directory) into an events Parquet file.

    Trace formats: tracefs trace / trace_pipe text, trace-cmd report text, perf script text
    (each optionally gzip-compressed) and trace.dat (v6/v7, zstd sections included).  Any size:
    the trace is read in chunks, one Parquet row group each; progress shows on a terminal.
    """
    trace, unmarked_losses = _trace_of(source)
    result = stream_parquet(trace, out, force=force, unmarked_losses=unmarked_losses)
    click.echo(summary(result))
    if cross_check:
        _cross_check(trace, result)


def _cross_check(trace: Path, result: StreamResult) -> None:
    """The libtracecmd cross-check's line; exit 1 when the readers differ."""
    from folio_replay import crosscheck  # pandas, the reference readers: --cross-check only

    if result.format != TRACE_DAT:
        raise click.UsageError(f"--cross-check reads trace.dat files, not {result.format}")
    if crosscheck.bindings() is None:
        click.echo(
            "libtracecmd cross-check: skipped, trace-cmd's Python bindings (ctracecmd) do not "
            "import (.ci/build-tracecmd-python builds them)",
            err=True,
        )
        return
    with Steps() as steps, steps.step("read with libtracecmd"):
        check = crosscheck.cross_check(trace)
    click.echo(check.summary())
    if not check.differences.empty:
        click.echo(check.differences.head(10).to_string(), err=True)
        sys.exit(1)
