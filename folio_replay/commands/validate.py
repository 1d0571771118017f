"""``folio-replay validate``: the captured model's counters against the bundle's own stats, and
cross-kernel against another capture of the same scenario."""

from __future__ import annotations

import sys

import click
import pandas as pd

from folio_replay.replay.analysis import analyse
from folio_replay.replay.timing import speedups
from folio_replay.replay.validate import attribution

SHOWN = [
    "check",
    "counter",
    "size_kb",
    "model",
    "observed",
    "predicted_low",
    "predicted_high",
    "match",
]


def warn_lost(bundle: str, lost: int) -> None:
    """Say on stderr that a trace lost events (its counts may fall short)."""
    if lost:
        click.echo(f"warning: {bundle}: the trace lost {lost} events", err=True)


@click.command("validate")
@click.argument("bundle", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--against",
    type=click.Path(exists=True, file_okay=False),
    help="A capture of the same scenario on another kernel: replay each bundle "
    "through the other's model and compare with the other's counters.",
)
@click.option(
    "--costs",
    type=click.Path(exists=True, dir_okay=False),
    help="A cost table (TOML) to use instead of the shipped ones.",
)
def command(bundle: str, against: str | None, costs: str | None) -> None:
    """Check BUNDLE's predicted counters against its stats deltas (exit 1 on a mismatch)."""
    first = analyse(bundle, costs=costs)
    checks = [first.validation()]
    warn_lost(bundle, first.trace.lost_events)
    click.echo(f"{bundle}: {first.release} → {first.model} ({first.model_evidence})")
    if against:
        second = analyse(against, costs=costs)
        warn_lost(against, second.trace.lost_events)
        click.echo(f"{against}: {second.release} → {second.model} ({second.model_evidence})")
        checks.append(second.validation())
        checks.append(first.validation(second.model, second.deltas(), "cross-kernel"))
        checks.append(second.validation(first.model, first.deltas(), "cross-kernel"))
    table = pd.concat(checks, ignore_index=True)
    click.echo(table[SHOWN].to_string(index=False))
    shares = attribution(checks[0])
    if not shares.empty:
        click.echo("split_deferred attribution (lazyfree reclaim vs genuine partial unmaps):")
        click.echo(shares.to_string(index=False))
    if against and first.model != second.model:
        old, new = (first, second) if first.model == "unbatched" else (second, first)
        click.echo(speedups(old, new).to_string(index=False))
        if old.emulated or new.emulated:
            click.echo("times: QEMU TCG emulation timings (not hardware costs)")
    mismatches = int((~table["match"].astype(bool)).sum())
    click.echo(f"{len(table) - mismatches}/{len(table)} counters match")
    if mismatches:
        sys.exit(1)
