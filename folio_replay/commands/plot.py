"""``folio-replay plot``: a report (or a fleet dataset) as PNG, SVG or an HTML page."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("plot")
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write: .png, .svg or .html (the plots and the summary tables).",
)
@click.option("--force", is_flag=True, help="Replace an existing output file.")
def command(source: Path, output: Path, force: bool) -> None:
    """Plot SOURCE, a report directory (folio-replay replay -o) or a fleet dataset.

    \b
    A report: split_deferred per folio size predicted vs observed (bounds as error bars),
    predicted reclaim time per model and arch, the reclaim episodes on a timeline.
    A fleet dataset (hive-partitioned Parquet with bundle, arch, model, speedup columns):
    the distribution of speedups per arch and model.
    """
    from folio_replay.present.render_plot import write_plot  # matplotlib: loaded only here

    click.echo(f"plot: {write_plot(source, output, force)}")
