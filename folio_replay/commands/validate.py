"""``folio-replay validate``: the captured model's counters against the bundle's own stats, and
cross-kernel against another capture of the same scenario."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import pandas as pd

from folio_replay.commands.options import costs_option
from folio_replay.errors import InputError
from folio_replay.present import validate as present
from folio_replay.present.tables import format_option, render
from folio_replay.progress import Steps
from folio_replay.replay.analysis import analyse
from folio_replay.replay.timing import speedups
from folio_replay.replay.validate import attribution


def warn_lost(bundle: str, lost: int) -> None:
    """Say on stderr that a trace lost events (its counts may fall short)."""
    if lost:
        click.echo(f"warning: {bundle}: the trace lost {lost} events", err=True)


@click.command("validate")
@click.argument("bundle", type=click.Path(exists=True))
@click.option(
    "--against",
    type=click.Path(exists=True),
    help="A capture of the same scenario on another kernel: replay each bundle "
    "through the other's model and compare with the other's counters.",
)
@costs_option
@format_option
def command(bundle: str, against: str | None, costs: str | None, fmt: str) -> None:
    """Check BUNDLE's predicted counters against its stats deltas (exit 1 on a mismatch)."""
    for path in filter(None, (bundle, against)):
        if Path(path).is_file():
            raise InputError(
                path,
                "a trace file alone has no counters to validate against: validate needs a "
                "bundle directory (stats before and after); replay the trace instead",
            )
    with Steps() as steps:
        analyses = {}
        for path in filter(None, (bundle, against)):
            with steps.step(f"analyse {path}"):
                analyses[path] = analyse(path, costs=costs)
            warn_lost(path, analyses[path].trace.lost_events)
        first = analyses[bundle]
        checks = [first.validation()]
        if against:
            second = analyses[against]
            checks.append(second.validation())
            checks.append(first.cross_kernel(second))
            checks.append(second.cross_kernel(first))
    table = pd.concat(checks, ignore_index=True)
    tables = [
        present.bundle_table(analyses),
        present.validation_table(table),
        present.attribution_table(attribution(checks[0])),
    ]
    if against and first.model != second.model:
        old, new = (first, second) if first.model == "unbatched" else (second, first)
        tables.append(present.speedup_table(speedups(old, new)))
    tables.append(present.result_table(table))
    render(tables, fmt)
    if present.mismatches(table):
        sys.exit(1)
