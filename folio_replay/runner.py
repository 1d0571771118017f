"""Run a command held at the starting line: fork, let the caller set up tracing for the child's
pid, then release it to exec. Its output is passed through and the tail kept."""

from __future__ import annotations

import collections
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import BinaryIO, Callable

TAIL_BYTES = 4096


@dataclass
class RunResult:
    """How the command ended: exit code or killing signal, output tails, wall and clock times."""

    pid: int
    exit_code: int | None
    exit_signal: int | None
    stdout_tail: str
    stderr_tail: str
    started_ns: int       # CLOCK_MONOTONIC when the command was released
    finished_ns: int      # CLOCK_MONOTONIC when it was reaped
    started_unix: float
    finished_unix: float


class _Tee(threading.Thread):
    """Copy a pipe to a stream, keeping the last TAIL_BYTES bytes."""

    def __init__(self, fd: int, out: BinaryIO | None) -> None:
        super().__init__(daemon=True)
        self.fd = fd
        self.out = out
        self.tail: collections.deque[bytes] = collections.deque()
        self.kept = 0

    def run(self) -> None:
        while chunk := os.read(self.fd, 65536):
            if self.out is not None:
                self.out.write(chunk)
                self.out.flush()
            self.tail.append(chunk)
            self.kept += len(chunk)
            while self.kept - len(self.tail[0]) >= TAIL_BYTES:
                self.kept -= len(self.tail.popleft())
        os.close(self.fd)

    def text(self) -> str:
        return b"".join(self.tail)[-TAIL_BYTES:].decode("utf-8", "replace")


def _child(argv: list[str], go_r: int, go_w: int, out_w: int, err_w: int) -> None:
    """In the forked child: wait for the go byte, then exec ``argv``; never returns."""
    try:
        os.close(go_w)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        if os.read(go_r, 1) != b"1":
            os._exit(126)
        for name in ("SIGPIPE", "SIGXFSZ"):   # Python ignores these; exec would keep that
            signal.signal(getattr(signal, name), signal.SIG_DFL)
        os.execvp(argv[0], argv)
    except BaseException as err:  # noqa: BLE001 - the child must never return into the caller
        try:
            os.write(2, f"folio-replay capture: cannot run {argv[0]}: {err}\n".encode())
        finally:
            os._exit(127)


def _terminal_sent_it() -> bool:
    """Whether a SIGINT most likely came from our terminal (so the child already got it too)."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError):
        return False


def run_held(argv: list[str], setup: Callable[[int], None]) -> RunResult:
    """Fork ``argv`` held before exec, call ``setup(pid)``, release it, pass its output through,
    and wait for it.

    A first SIGINT goes to the command (forwarded unless it came from the terminal, which sends
    it to the whole foreground group), so the capture is still written with the command's exit
    status; a second SIGINT, or SIGTERM, aborts with KeyboardInterrupt after killing the command.
    """
    go_r, go_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        _child(argv, go_r, go_w, out_w, err_w)
    for fd in (go_r, out_w, err_w):
        os.close(fd)
    tees = [_Tee(out_r, getattr(sys.stdout, "buffer", None)),
            _Tee(err_r, getattr(sys.stderr, "buffer", None))]
    for tee in tees:
        tee.start()
    interrupts = 0

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal interrupts
        interrupts += 1
        if signum == signal.SIGTERM or interrupts > 1:
            raise KeyboardInterrupt
        if not _terminal_sent_it():
            os.kill(pid, signal.SIGINT)

    old_int = signal.signal(signal.SIGINT, on_signal)
    old_term = signal.signal(signal.SIGTERM, on_signal)
    status = None
    try:
        setup(pid)
        started_unix, started_ns = time.time(), time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        os.write(go_w, b"1")
        os.close(go_w)
        go_w = -1
        _, status = os.waitpid(pid, 0)
        finished_unix, finished_ns = time.time(), time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    finally:
        if go_w >= 0:
            os.close(go_w)           # the held child reads EOF and exits without exec
        if status is None:
            _reap(pid)
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
    for tee in tees:
        tee.join(timeout=2.0)        # a background grandchild may keep the pipe open
    return RunResult(
        pid=pid,
        exit_code=os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else None,
        exit_signal=os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        stdout_tail=tees[0].text(), stderr_tail=tees[1].text(),
        started_ns=started_ns, finished_ns=finished_ns,
        started_unix=started_unix, finished_unix=finished_unix,
    )


def _reap(pid: int) -> None:
    """Stop and reap a child left behind by an aborted run: SIGTERM, then SIGKILL after 2 s."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
