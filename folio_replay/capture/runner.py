"""Run a command inside a tracefs instance's pid filter: its output passed through, tail kept.

The command is started through ``/bin/sh``, which moves itself into the capture's memory cgroup
(when there is one), writes its own pid (the pid the command will have after ``exec``) and the
extra pids into the instance's ``set_event_pid`` (unless the whole system is traced), turns the
instance on, then execs the command. So the group and the filter are in place before the
command's first instruction
(the trace's first events under that pid are the exec itself: the shell's memory torn down, the
command's page tables allocated), and the only process forked from this (large) Python process is a
vfork'd shell: forking Python
itself would share its anon large folios with the child, and the copy-on-write faults plus the
child's exec leave them partially mapped, which queues ~100+ deferred splits per capture on 6.18
(measured on this project's VM: split_deferred +127 for capturing `true` with 64 KiB mTHP on).
No threads are started either (glibc madvises an exiting thread's stack, splitting its folios).
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

TAIL_BYTES = 4096
DRAIN_SECONDS = 2.0  # how long to keep reading output a background grandchild holds open
# $1 instance, $2 cgroup.procs to join ("" for none), $3 pids to filter on besides the shell's
# own ("-" for no pid filter), then the command.
_ARM = (
    "inst=$1; procs=$2; pids=$3; shift 3; "
    'if [ -n "$procs" ]; then echo $$ > "$procs" || exit 126; fi; '
    'if [ "$pids" != - ]; then echo "$$ $pids" > "$inst/set_event_pid" || exit 126; fi; '
    'echo 1 > "$inst/tracing_on" || exit 126; '
    'exec "$@"'
)


@dataclass
class RunResult:
    """How the command ended: exit code or killing signal, output tails, wall and clock times."""

    pid: int
    exit_code: int | None
    exit_signal: int | None
    stdout_tail: str
    stderr_tail: str
    started_ns: int  # CLOCK_MONOTONIC just before the command was started
    finished_ns: int  # CLOCK_MONOTONIC when it was reaped
    started_unix: float
    finished_unix: float


def _terminal_sent_it() -> bool:
    """Whether a SIGINT most likely came from our terminal (so the command already got it)."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError):
        return False


def _pass_through(proc: subprocess.Popen) -> tuple[bytes, bytes]:
    """Copy the command's stdout/stderr to ours until both close (or DRAIN_SECONDS after it
    exits); returns the tails."""
    assert proc.stdout is not None and proc.stderr is not None  # started with PIPE
    outs = {
        proc.stdout.fileno(): getattr(sys.stdout, "buffer", None),
        proc.stderr.fileno(): getattr(sys.stderr, "buffer", None),
    }
    tails = {fd: bytearray() for fd in outs}
    sel = selectors.DefaultSelector()
    for fd in outs:
        sel.register(fd, selectors.EVENT_READ)
    deadline = None
    while sel.get_map():
        for key, _ in sel.select(timeout=0.2):
            chunk = os.read(key.fd, 65536)
            if not chunk:
                sel.unregister(key.fd)
                continue
            sink = outs[key.fd]
            if sink is not None:
                sink.write(chunk)
                sink.flush()
            tail = tails[key.fd]
            tail += chunk
            del tail[:-TAIL_BYTES]
        if deadline is None and proc.poll() is not None:
            deadline = time.monotonic() + DRAIN_SECONDS
        if deadline is not None and time.monotonic() > deadline:
            break
    sel.close()
    return bytes(tails[proc.stdout.fileno()]), bytes(tails[proc.stderr.fileno()])


def run_in_instance(
    argv: list[str],
    instance: Path,
    extra_pids: list[int] | None,
    cgroup_procs: Path | None = None,
    env: dict[str, str] | None = None,
) -> RunResult:
    """Run ``argv`` traced by the tracefs instance directory ``instance`` and wait for it.

    The pid filter is the command's pid + ``extra_pids`` (the caller has set
    options/event-fork), or none when ``extra_pids`` is None. With ``cgroup_procs`` the command
    runs in that cgroup (the ``cgroup.procs`` file it joins); ``env`` is added to its
    environment.

    A first SIGINT goes to the command (forwarded unless it came from the terminal, which sends
    it to the whole foreground group), so the caller still writes the capture with the command's
    exit status; a second SIGINT, or SIGTERM, kills the command and raises KeyboardInterrupt.
    """
    interrupts = 0
    proc: subprocess.Popen | None = None

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal interrupts
        interrupts += 1
        if signum == signal.SIGTERM or interrupts > 1:
            raise KeyboardInterrupt
        if proc is not None and not _terminal_sent_it():
            proc.send_signal(signal.SIGINT)

    old_int = signal.signal(signal.SIGINT, on_signal)
    old_term = signal.signal(signal.SIGTERM, on_signal)
    try:
        started_unix, started_ns = time.time(), time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        proc = subprocess.Popen(
            [
                "/bin/sh",
                "-c",
                _ARM,
                "folio-replay-capture",
                str(instance),
                "" if cgroup_procs is None else str(cgroup_procs),
                "-" if extra_pids is None else " ".join(map(str, extra_pids)),
                *argv,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        assert proc.stdout is not None and proc.stderr is not None  # started with PIPE
        with proc.stdout, proc.stderr:
            out, err = _pass_through(proc)
        status = proc.wait()
        finished_unix, finished_ns = time.time(), time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    finally:
        if proc is not None and proc.returncode is None:
            _stop(proc)
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
    return RunResult(
        pid=proc.pid,
        exit_code=status if status >= 0 else None,
        exit_signal=-status if status < 0 else None,
        stdout_tail=out.decode("utf-8", "replace"),
        stderr_tail=err.decode("utf-8", "replace"),
        started_ns=started_ns,
        finished_ns=finished_ns,
        started_unix=started_unix,
        finished_unix=finished_unix,
    )


def _stop(proc: subprocess.Popen) -> None:
    """Stop and reap a command left behind by an aborted run: SIGTERM, SIGKILL after 2 s."""
    proc.terminate()
    try:
        proc.wait(timeout=2.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
