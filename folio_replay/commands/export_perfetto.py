"""``folio-replay export-perfetto``: a report as a Perfetto trace, captured and predicted reclaim
side by side."""

from __future__ import annotations

from pathlib import Path

import click

from folio_replay.present.perfetto import export_perfetto
from folio_replay.progress import Steps


@click.command("export-perfetto")
@click.argument("report", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Perfetto trace to write (e.g. reclaim.pftrace).",
)
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@click.option(
    "--events/--no-events",
    default=True,
    show_default=True,
    help="Include every captured event (one instant each, per CPU track).",
)
def command(report: Path, output: Path, force: bool, events: bool) -> None:
    """Export REPORT (folio-replay replay -o) as a trace ui.perfetto.dev opens.

    \b
    Tracks: the captured reclaim episodes (measured windows, folio counts), MADV_FREE calls and
    partial unmaps; per model and arch, the predicted reclaim of each episode (starting where
    the captured one starts, lasting the predicted time, one nested slice per folio size); and
    the captured events per CPU.
    """
    with Steps() as steps, steps.step(f"export {report}"):
        written = export_perfetto(report, output, force, events)
    click.echo(f"perfetto trace: {written}")
