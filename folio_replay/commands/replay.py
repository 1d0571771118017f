"""``folio-replay replay``: reconstruct a bundle, replay it through the models, write a report,
print the answer."""

from __future__ import annotations

import click

from folio_replay.commands.options import replay_options
from folio_replay.present.replay import summary
from folio_replay.present.report import load_report
from folio_replay.present.tables import format_option, render
from folio_replay.replay.stream import replay_report


@click.command("replay")
@click.argument("bundle", type=click.Path(exists=True, file_okay=False))
@replay_options
@click.option("-o", "--output", required=True, type=click.Path(), help="Report directory to write.")
@click.option("--force", is_flag=True, help="Replace an existing report directory.")
@format_option
def command(
    bundle: str,
    models: tuple[str, ...],
    archs: tuple[str, ...],
    costs: str | None,
    output: str,
    force: bool,
    fmt: str,
) -> None:
    """Replay BUNDLE's reclaim through unbatched and batched unmap, write a report and print
    the answer: split_deferred per folio size and reclaim time per arch under each model, and
    the captured kernel's validation. The trace is streamed: any length replays in bounded
    memory."""
    done = replay_report(bundle, output, list(models) or None, list(archs) or None, costs, force)
    if done.lost_events:
        click.echo(
            f"warning: the trace lost {done.lost_events} events: counts may fall short", err=True
        )
    render(summary(load_report(output), bundle), fmt)
    if fmt != "json":
        click.echo(f"report: {output}")
