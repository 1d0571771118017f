"""``folio-replay fleet``: replay many bundles as Dask tasks into a hive-partitioned Parquet
dataset and print the fleet's answer."""

from __future__ import annotations

from pathlib import Path

import click

from folio_replay.commands.options import replay_options
from folio_replay.errors import InputError
from folio_replay.fleet import fleet_tables, load_rows, run_fleet
from folio_replay.present.tables import format_option, render
from folio_replay.progress import Steps


@click.command("fleet")
@click.argument("bundles", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "-o", "--output", required=True, type=click.Path(), help="Fleet dataset directory to write."
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="A running Dask scheduler (tcp://HOST:PORT) whose workers see the bundles' paths "
    "(default: a local cluster).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Worker processes of the local cluster (default: one per CPU).",
)
@replay_options
@click.option(
    "--force",
    is_flag=True,
    help="Replay bundles already in the dataset again (a dataset made with other models, "
    "archs or cost tables is replaced).",
)
@format_option
def command(
    bundles: tuple[str, ...],
    output: str,
    scheduler: str | None,
    workers: int | None,
    models: tuple[str, ...],
    archs: tuple[str, ...],
    costs: str | None,
    force: bool,
    fmt: str,
) -> None:
    """Replay BUNDLES (bundle directories, directories searched for bundles, or files listing
    one path a line) into the fleet dataset OUTPUT, partitioned by arch, kernel series and
    model; bundles already there are skipped. A bad bundle is reported, never fatal.

    Prints the bundles that need a look, then per arch, kernel series and model: folios,
    split_deferred, predicted reclaim time and the per-bundle speedups' p50/p90/p99.
    """
    if scheduler and workers:
        raise InputError("--workers", "sizes the local cluster: not with --scheduler")
    with Steps() as steps:
        status = run_fleet(
            bundles,
            Path(output),
            list(models) or None,
            list(archs) or None,
            costs,
            scheduler,
            workers,
            force,
            steps,
        )
    render(fleet_tables(load_rows(output), status, output), fmt)
    if fmt != "json":
        click.echo(f"dataset: {output}")
