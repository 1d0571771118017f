"""``folio-replay calibrate``: fit a cost table to the measured reclaim episodes of captures."""

from __future__ import annotations

from pathlib import Path

import click

from folio_replay.errors import InputError
from folio_replay.outputs import replace_file
from folio_replay.present.calibrate import fit_tables
from folio_replay.present.tables import format_option, render
from folio_replay.progress import Steps
from folio_replay.replay.analysis import analyse
from folio_replay.replay.costs.calibrate import episode_counts, fit, op_groups, table_text
from folio_replay.replay.costs.tables import load_table


@click.command("calibrate")
@click.argument("bundles", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--costs",
    type=click.Path(exists=True, dir_okay=False),
    help="The table to fit (default: the shipped table of the bundles' arch).",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Write the fitted table (TOML) here."
)
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@format_option
def command(
    bundles: tuple[str, ...], costs: str | None, output: str | None, force: bool, fmt: str
) -> None:
    """Fit a cost table's op costs to the MADV_PAGEOUT times measured in BUNDLES."""
    with Steps() as steps:
        analyses = [
            analyse(path, archs=[], costs=costs)
            for path in steps.track(bundles, "analyse bundles", total=len(bundles))
        ]
    archs = {analysis.arch for analysis in analyses}
    if len(archs) != 1:
        raise InputError(
            bundles[0],
            f"bundles of several archs ({', '.join(sorted(archs))}): calibrate one arch at a time",
        )
    arch = archs.pop()
    table = load_table(costs or arch)
    if table.arch != arch:
        raise InputError(costs, f"a {table.arch} table cannot be fitted to {arch} captures")
    episodes = [row for analysis in analyses for row in episode_counts(analysis, table)]
    groups = op_groups()
    if len(episodes) < 2:
        raise InputError(
            bundles[0],
            f"{len(episodes)} usable episodes: need at least 2 (MADV_PAGEOUT of large folios only)",
        )
    scales, errors = fit(episodes, table, groups)
    emulated = any(analysis.emulated for analysis in analyses)
    render(fit_tables(Path(table.path).name, arch, scales, errors, emulated), fmt)
    if output:
        text = table_text(table, scales, groups, errors, emulated)
        replace_file(Path(output), lambda tmp: tmp.write_text(text), force, inputs=bundles)
        if fmt != "json":
            click.echo(f"table: {output}")
