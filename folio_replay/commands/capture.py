"""``folio-replay capture``: trace one command on this machine into a bundle."""

from __future__ import annotations

import re
from pathlib import Path

import click

from folio_replay.capture import CaptureRequest, capture
from folio_replay.errors import InputError

_EVENT = re.compile(r"[A-Za-z0-9_]+:[A-Za-z0-9_*?\[\]]+")
_SIZE = re.compile(r"(?P<number>\d+)\s*(?:(?P<unit>[kKmMgGtT])(?:i?B)?|B?)")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _events(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> list[str]:
    for value in values:
        if not _EVENT.fullmatch(value):
            raise InputError("--event", f"{value!r} is not SYSTEM:NAME (e.g. kmem:mm_page_alloc)")
    return list(values)


def _size(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    """Bytes of ``200M``, ``200MiB``, ``1G``, ``4096`` (binary units)."""
    if value is None:
        return None
    match = _SIZE.fullmatch(value.strip())
    if match is None or int(match["number"]) == 0:
        raise InputError("--memory-limit", f"{value!r} is not a size (e.g. 200M, 1G, 209715200)")
    return int(match["number"]) * _UNITS[(match["unit"] or "").lower()]


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
    "--memory-limit",
    metavar="SIZE",
    callback=_size,
    help="Limit the command's memory cgroup to SIZE (memory.max or v1 memory.limit_in_bytes; "
    "K/M/G/T binary units).",
)
@click.option(
    "--system",
    is_flag=True,
    help="Whole-machine mode: no cgroup of ours and no pid filter (every pid is traced), for "
    "kswapd / global reclaim studies.",
)
@click.option(
    "--tracefs",
    type=click.Path(path_type=Path),
    hidden=True,
    help="Use this tracefs directory instead of the mounted one (for tests).",
)
@click.argument("command", nargs=-1, required=True)
@click.pass_context
def command(
    ctx: click.Context,
    bundle: Path,
    force: bool,
    buffer_kb: int,
    events: list[str],
    memory_limit: int | None,
    system: bool,
    tracefs: Path | None,
    command: tuple[str, ...],
) -> None:
    """Trace COMMAND (and kswapd) into a bundle; exit with COMMAND's status.

    \b
    folio-replay capture -o BUNDLE [options] -- COMMAND ARGS...

    Needs root and tracefs (mounted at /sys/kernel/tracing if it is not mounted, and unmounted
    afterwards). The events are traced in a private tracefs instance
    (instances/folio-replay-PID, removed afterwards, also on Ctrl-C); global tracing state is
    never touched. Default events: the madvise/munmap/process_madvise/write syscalls, vmscan
    reclaim (kswapd, direct, memcg, softlimit and node reclaim, writeback of folios), page-cache
    insertions and deletions, tlb_flush, rss_stat, page alloc/free, LRU insertion and user page
    faults; those the kernel lacks are listed in meta.json.

    COMMAND runs in a memory cgroup of its own (v2 where a mounted cgroup2 has the memory
    controller, else v1 inside the capture's own memory cgroup; path in $FOLIO_REPLAY_CGROUP),
    joined before it execs and removed afterwards (leftover tasks moved out). The event pid
    filter holds COMMAND's process tree (set before COMMAND execs, children followed) AND the
    kswapd threads, so background reclaim episodes during the run are in the trace too. With
    --system there is neither: every pid is traced.

    BUNDLE gets trace.txt.gz, stats/before and stats/after (the transparent_hugepage sysfs tree,
    /proc/vmstat and the cgroup's memcg/memory.stat), and meta.json (kernel, arch, command,
    events, buffer size, lost events, times, mode, cgroup, MGLRU state, swap devices, COMMAND's
    exit status and output tail). A failing COMMAND still gives a bundle, and capture exits with
    its status (128 + N when killed by signal N). A first Ctrl-C goes to COMMAND and the bundle
    is written; a second one aborts without a bundle.
    """
    meta = capture(
        CaptureRequest(
            bundle=bundle,
            command=list(command),
            force=force,
            buffer_kb=buffer_kb,
            extra_events=events,
            memory_limit=memory_limit,
            system=system,
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
    ctx.exit(meta["exit_code"] if meta["exit_signal"] is None else 128 + meta["exit_signal"])
