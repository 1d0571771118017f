"""``folio-replay capture``: trace one command on this machine into a bundle."""

from __future__ import annotations

import re
from pathlib import Path

import click

from folio_replay.capture import CaptureRequest, capture

_EVENT = re.compile(r"[A-Za-z0-9_]+:[A-Za-z0-9_*?\[\]]+")


def _events(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> list[str]:
    for value in values:
        if not _EVENT.fullmatch(value):
            raise click.BadParameter(f"{value!r} is not SYSTEM:NAME (e.g. kmem:mm_page_alloc)")
    return list(values)


@click.command("capture", context_settings={"allow_interspersed_args": False})
@click.option(
    "-o",
    "--output",
    "bundle",
    required=True,
    type=click.Path(path_type=Path),
    help="Bundle directory to write (must not exist unless --force).",
)
@click.option("--force", is_flag=True, help="Replace an existing BUNDLE.")
@click.option(
    "--buffer-kb",
    type=click.IntRange(min=1),
    default=8192,
    show_default=True,
    help="Ring buffer size per CPU of the private instance, in KiB.",
)
@click.option(
    "--event",
    "events",
    multiple=True,
    metavar="SYS:NAME",
    callback=_events,
    help="Enable this tracepoint too (repeatable; wildcards allowed in NAME).",
)
@click.option(
    "--tracefs",
    type=click.Path(path_type=Path),
    hidden=True,
    help="Use this tracefs directory instead of the mounted one (for tests).",
)
@click.argument("command", nargs=-1, required=True)
def command(
    bundle: Path,
    force: bool,
    buffer_kb: int,
    events: list[str],
    tracefs: Path | None,
    command: tuple[str, ...],
) -> None:
    """Trace COMMAND (and kswapd) into a bundle.

    \b
    folio-replay capture -o BUNDLE [options] -- COMMAND ARGS...

    Needs root and tracefs (mounted at /sys/kernel/tracing if it is not mounted, and unmounted
    afterwards). The events are traced in a private tracefs instance
    (instances/folio-replay-PID, removed afterwards, also on Ctrl-C); global tracing state is
    never touched. Default events: the madvise/munmap/process_madvise syscalls, vmscan reclaim
    (incl. kswapd and direct reclaim), tlb_flush, rss_stat, page alloc/free, LRU insertion and
    user page faults; those the kernel lacks are listed in meta.json.

    The event pid filter holds COMMAND's process tree (set before COMMAND execs, children followed)
    AND the kswapd threads, so background reclaim episodes during the run are in the trace too.

    BUNDLE gets trace.txt.gz, stats/before and stats/after (the transparent_hugepage sysfs tree
    and /proc/vmstat), and meta.json (kernel, arch, command, events, buffer size, lost events,
    times, COMMAND's exit status and output tail). A failing COMMAND still gives a bundle. A first
    Ctrl-C goes to COMMAND and the bundle is written; a second one aborts without a bundle.
    """
    meta = capture(
        CaptureRequest(
            bundle=bundle,
            command=list(command),
            force=force,
            buffer_kb=buffer_kb,
            extra_events=events,
            tracefs=tracefs,
        )
    )
    lost = meta["lost_events"]["total"]
    status = (
        f"exit code {meta['exit_code']}"
        if meta["exit_signal"] is None
        else f"killed by signal {meta['exit_signal']}"
    )
    click.echo(
        f"folio-replay: wrote {bundle}: {meta['event_lines']} events, {lost} lost, "
        f"command {status}",
        err=True,
    )
    if lost:
        click.echo(
            f"folio-replay: warning: {lost} events lost; retry with a larger --buffer-kb", err=True
        )
    if meta["events_missing"]:
        click.echo(
            "folio-replay: note: not on this kernel: " + ", ".join(meta["events_missing"]), err=True
        )
