"""``folio-replay replay``: reconstruct a bundle, replay it through the models, write a report."""

from __future__ import annotations

import click
import pandas as pd

from folio_replay.replay.analysis import analyse
from folio_replay.replay.archs import ARCHS
from folio_replay.replay.models import MODELS

SUMMARY_COLUMNS = [
    "model",
    "arch",
    "size_kb",
    "folios",
    "split_deferred_low",
    "split_deferred_high",
    "time_ns",
]


def summary(predictions: pd.DataFrame) -> pd.DataFrame:
    """Predictions summed over episodes, per model, arch and folio size."""
    if predictions.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    return predictions.groupby(["model", "arch", "size_kb"], as_index=False)[
        ["folios", "split_deferred_low", "split_deferred_high", "time_ns"]
    ].sum()


def show(frame: pd.DataFrame, empty: str) -> str:
    """A table for the terminal, or ``empty`` when it has no rows."""
    return frame.to_string(index=False) if len(frame) else empty


def emulation_note(emulated: bool) -> str:
    """What the times are."""
    return (
        "times: QEMU TCG emulation timings (not hardware costs)"
        if emulated
        else "times: priced with the cost tables; measured times are this machine's"
    )


@click.command("replay")
@click.argument("bundle", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--model",
    "models",
    multiple=True,
    type=click.Choice(list(MODELS)),
    help="Model to replay through (repeatable; default: all).",
)
@click.option(
    "--arch",
    "archs",
    multiple=True,
    type=click.Choice(ARCHS),
    help="Architecture to price for (repeatable; default: all).",
)
@click.option(
    "--costs",
    type=click.Path(exists=True, dir_okay=False),
    help="A cost table (TOML) to use instead of the shipped ones.",
)
@click.option("-o", "--output", required=True, type=click.Path(), help="Report directory to write.")
@click.option("--force", is_flag=True, help="Replace an existing report directory.")
def command(
    bundle: str,
    models: tuple[str, ...],
    archs: tuple[str, ...],
    costs: str | None,
    output: str,
    force: bool,
) -> None:
    """Replay BUNDLE's reclaim through unbatched and batched unmap and write a report."""
    analysis = analyse(bundle, list(models) or None, list(archs) or None, costs)
    analysis.write_report(output, force)
    recon = analysis.recon
    validation = analysis.validation() if analysis.has_stats else pd.DataFrame()
    timing = analysis.timing()
    lost = analysis.trace.lost_events
    click.echo(
        f"{bundle}: kernel {analysis.release} ({analysis.arch}); captured model "
        f"{analysis.model}: {analysis.model_evidence}"
    )
    if lost:
        click.echo(f"warning: the trace lost {lost} events: counts may fall short", err=True)
    click.echo(
        f"{len(recon.episodes)} reclaim episodes, {len(recon.folios)} large-folio "
        f"unmap records, {int(recon.partial['partial_high'].sum()) if len(recon.partial) else 0}"
        " genuine partial unmaps (upper bound)"
    )
    click.echo(
        show(
            summary(analysis.predictions),
            "no large folio reached reclaim: nothing to replay through the models",
        )
    )
    if not validation.empty:
        matched = int(validation["match"].sum())
        click.echo(f"validation ({analysis.model}): {matched}/{len(validation)} counters match")
    click.echo(show(timing, "no large-folio reclaim to time"))
    click.echo(emulation_note(analysis.emulated))
    click.echo(f"report: {output}")
