"""Live capture: trace one command in a private tracefs instance and write a bundle.

The command runs in a memory cgroup of the capture's own (optionally limited), or, in system
mode, in no cgroup of ours with every pid traced. A bundle is a directory: ``trace.txt.gz`` (the
instance's ``trace`` text), ``stats/before`` and ``stats/after`` (the transparent_hugepage sysfs
tree by relative path, ``vmstat``, and the cgroup's ``memcg/memory.stat``) and ``meta.json``. It
is assembled in a temporary directory next to the target and renamed into place, so a failed or
interrupted capture never leaves a partial bundle.
"""

from __future__ import annotations

import datetime
import gzip
import json
import os
import platform
import shutil
import signal
import tomllib
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from folio_replay import __version__
from folio_replay.capture.cgroup import CgroupPlace, MemoryCgroup, find_place
from folio_replay.capture.runner import RunResult, run_in_instance
from folio_replay.capture.snapshot import (
    THP_ROOT,
    VMSTAT,
    mglru_state,
    snapshot_stats,
    swap_devices,
)
from folio_replay.capture.tracefs import (
    DEFAULT_TRACEFS,
    Instance,
    expand_events,
    kswapd_pids,
    open_tracefs,
    require_root,
    unmount,
)
from folio_replay.errors import InputError
from folio_replay.outputs import check_target, replace_dir


def default_events() -> list[str]:
    """The default ``SYSTEM:NAME`` patterns, from ``capture_events.toml``."""
    text = resources.files("folio_replay.capture").joinpath("events.toml").read_text()
    return list(tomllib.loads(text)["events"])


@dataclass
class CaptureRequest:
    """What to capture and where; the paths after ``system`` exist for tests."""

    bundle: Path
    command: list[str]
    force: bool = False
    buffer_kb: int = 8192
    extra_events: list[str] = field(default_factory=list)
    memory_limit: int | None = None  # bytes: memory.max / memory.limit_in_bytes of the group
    system: bool = False  # no cgroup and no pid filter: the whole machine is traced
    tracefs: Path | None = None
    thp_root: Path = THP_ROOT
    vmstat: Path = VMSTAT


def _utc(unix: float) -> str:
    return datetime.datetime.fromtimestamp(unix, datetime.UTC).isoformat(timespec="microseconds")


def _check_command(argv: list[str]) -> None:
    prog = argv[0]
    found = shutil.which(prog) if "/" not in prog else (prog if os.access(prog, os.X_OK) else None)
    if found is None:
        raise InputError(prog, "command not found or not executable")


@dataclass
class _Setup:
    """What the run was made in: events, kswapd pids, cgroup, swap and MGLRU state."""

    enabled: list[str]
    missing: list[str]
    kswapd: list[int] = field(default_factory=list)
    cgroup: MemoryCgroup | None = None
    swaps_before: list[dict] = field(default_factory=list)
    swaps_after: list[dict] = field(default_factory=list)


def _meta(
    req: CaptureRequest,
    run: RunResult,
    inst: Instance,
    setup: _Setup,
    event_lines: int,
    lost: dict[int, int],
    cpu_stats: dict[int, dict[str, int]],
) -> dict:
    """The bundle's meta.json content."""
    pid_filter = (
        None if req.system else {"command": run.pid, "kswapd": setup.kswapd, "event_fork": True}
    )
    return {
        "name": req.bundle.name,
        "kernel": Path("/proc/version").read_text().strip(),
        "release": platform.release(),
        "arch": platform.machine(),
        "command": list(req.command),
        "made_by": f"folio-replay {__version__} capture",
        "format": "tracefs-text",
        "started_utc": _utc(run.started_unix),
        "finished_utc": _utc(run.finished_unix),
        "monotonic_start_ns": run.started_ns,
        "monotonic_end_ns": run.finished_ns,
        "duration_ns": run.finished_ns - run.started_ns,
        "exit_code": run.exit_code,
        "exit_signal": run.exit_signal,
        "stdout_tail": run.stdout_tail,
        "stderr_tail": run.stderr_tail,
        "tracefs": str(inst.root),
        "instance": inst.name,
        "trace_clock": inst.read("trace_clock").split("[")[1].split("]")[0],
        "buffer_size_kb": int(inst.read("buffer_size_kb").split()[0]),
        "events_enabled": setup.enabled,
        "events_missing": setup.missing,
        "mode": "system" if req.system else "cgroup",
        "command_pid": run.pid,
        "pid_filter": pid_filter,
        "cgroup": None if setup.cgroup is None else setup.cgroup.meta(),
        "mglru": mglru_state(),
        "swaps": {"before": setup.swaps_before, "after": setup.swaps_after},
        "event_lines": event_lines,
        "lost_events": _lost_events(lost, cpu_stats),
    }


def _lost_events(markers: dict[int, int], cpu_stats: dict[int, dict[str, int]]) -> dict:
    """Lost events per CPU from both sources, and their total.

    The ``trace`` file of a stopped buffer prints no ``[LOST K EVENTS]`` marker for events the
    ring buffer overwrote (measured on 6.18: 16 KiB per CPU, 28 266 overwritten, no marker), so
    the per-CPU ``overrun`` (overwritten) + ``dropped events`` (refused when full) count too; a
    marker and an overrun describe the same loss, so a CPU's loss is the larger of the two.
    """
    cpus = sorted(set(markers) | set(cpu_stats))
    overrun = {c: cpu_stats.get(c, {}).get("overrun", 0) for c in cpus}
    dropped = {c: cpu_stats.get(c, {}).get("dropped_events", 0) for c in cpus}
    return {
        "total": sum(max(markers.get(c, 0), overrun[c] + dropped[c]) for c in cpus),
        "markers_per_cpu": {str(c): markers.get(c, 0) for c in cpus},
        "overrun_per_cpu": {str(c): overrun[c] for c in cpus},
        "dropped_per_cpu": {str(c): dropped[c] for c in cpus},
    }


def capture(req: CaptureRequest) -> dict:
    """Run ``req.command`` traced and write the bundle ``req.bundle``; returns its meta.

    Raises :class:`InputError` without root, without tracefs, without a memory cgroup (unless
    ``system``), for a missing extra event, an unknown command, or an existing bundle without
    ``force``. The instance and the cgroup are removed and a tracefs this call mounted is
    unmounted in every case, Ctrl-C and SIGTERM included.
    """
    if req.system and req.memory_limit is not None:
        raise InputError("--memory-limit", "needs the capture's cgroup: not with --system")
    require_root(req.tracefs or DEFAULT_TRACEFS)
    check_target(req.bundle, req.force, directory=True)
    _check_command(req.command)
    place = None if req.system else find_place()
    old_term = signal.signal(signal.SIGTERM, _interrupt)
    root, mounted = open_tracefs(req.tracefs)
    try:
        enabled, missing = expand_events(root, default_events())
        extra, extra_missing = expand_events(root, req.extra_events)
        if extra_missing:
            raise InputError(root / "events", f"no such event on this kernel: {extra_missing[0]}")
        enabled += [e for e in extra if e not in enabled]
        setup = _Setup(enabled, missing)
        metas: list[dict] = []
        replace_dir(
            req.bundle,
            lambda tmp: metas.append(_capture_into(tmp, req, root, place, setup)),
            req.force,
        )
        meta = metas[0]
    finally:
        if mounted:
            unmount(root)
        signal.signal(signal.SIGTERM, old_term)
    return meta


def _interrupt(_signum: int, _frame: object) -> None:
    """SIGTERM outside the command's run: unwind like Ctrl-C, so everything is cleaned up."""
    raise KeyboardInterrupt


def _capture_into(
    tmp: Path, req: CaptureRequest, root: Path, place: CgroupPlace | None, setup: _Setup
) -> dict:
    """Trace the command in a fresh instance (and cgroup) and write trace, stats and meta into
    ``tmp``."""
    name = f"folio-replay-{os.getpid()}"
    group: AbstractContextManager = (
        nullcontext() if place is None else MemoryCgroup(place, name, req.memory_limit)
    )
    with Instance(root, name) as inst:
        inst.write("buffer_size_kb", str(req.buffer_kb))
        inst.write("options/event-fork", "1")
        for event in setup.enabled:
            inst.enable(event)
        setup.kswapd = [] if req.system else kswapd_pids()
        with group as cgroup:
            setup.cgroup = cgroup
            memcg_stat = None if cgroup is None else cgroup.path / "memory.stat"
            setup.swaps_before = swap_devices()
            snapshot_stats(tmp / "stats" / "before", req.thp_root, req.vmstat, memcg_stat)
            # The cgroup and the filter (command's pid + kswapd; event-fork adds children as
            # they fork) are joined and set by the command's own process before it execs, so
            # they hold from its first instruction.
            run = run_in_instance(
                list(req.command),
                inst.path,
                None if req.system else setup.kswapd,
                None if cgroup is None else cgroup.procs,
                None if cgroup is None else {"FOLIO_REPLAY_CGROUP": str(cgroup.path)},
            )
            inst.write("tracing_on", "0")
            snapshot_stats(tmp / "stats" / "after", req.thp_root, req.vmstat, memcg_stat)
            setup.swaps_after = swap_devices()
        with gzip.open(tmp / "trace.txt.gz", "wb", compresslevel=6) as sink:
            event_lines, lost = inst.save_trace(sink)
        meta = _meta(req, run, inst, setup, event_lines, lost, inst.cpu_stats())
    with open(tmp / "meta.json", "w") as fh:
        json.dump(meta, fh, indent=2)
        fh.write("\n")
    return meta
