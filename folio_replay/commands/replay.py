"""``folio-replay replay``: reconstruct a bundle, replay it through the models, write a report,
print the answer."""

from __future__ import annotations

import click

from folio_replay.commands.options import replay_options
from folio_replay.parsers.bundle import load_bundle
from folio_replay.present.replay import summary
from folio_replay.present.report import load_report
from folio_replay.present.tables import format_option, render
from folio_replay.replay.archs import ARCH_OF_MACHINE
from folio_replay.replay.stream import replay_report


@click.command("replay")
@click.argument("bundle", type=click.Path(exists=True))
@replay_options
@click.option(
    "--machine",
    type=click.Choice(list(ARCH_OF_MACHINE)),
    help="The machine (uname -m) that recorded the trace, where the bundle does not say: a "
    "text trace given without its bundle (a trace.dat says it).",
)
@click.option("-o", "--output", required=True, type=click.Path(), help="Report directory to write.")
@click.option("--force", is_flag=True, help="Replace an existing report directory.")
@format_option
def command(
    bundle: str,
    models: tuple[str, ...],
    archs: tuple[str, ...],
    costs: str | None,
    machine: str | None,
    output: str,
    force: bool,
    fmt: str,
) -> None:
    """Replay BUNDLE's reclaim through unbatched and batched unmap, write a report and print
    the answer: split_deferred per folio size and reclaim time per arch under each model, and
    the captured kernel's validation. BUNDLE is a capture bundle directory or a trace file
    alone (no counters to validate against). The trace is streamed: any length replays in
    bounded memory."""
    loaded = load_bundle(bundle)
    if machine:
        loaded = loaded.with_machine(machine)
    done = replay_report(loaded, output, list(models) or None, list(archs) or None, costs, force)
    if done.lost_events:
        click.echo(
            f"warning: the trace lost {done.lost_events} events: counts may fall short", err=True
        )
    render(summary(load_report(output), bundle), fmt)
    if fmt != "json":
        click.echo(f"report: {output}")
