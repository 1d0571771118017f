"""Pair syscall enter and exit events of one thread into call windows.

A thread is in at most one syscall at a time, so its next per-syscall event after an enter is
that call's exit; when it is anything else (another call's enter, say), the exit was lost (a
ring-buffer overrun) and the call ended before that event (:func:`next_syscall`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from folio_replay.replay.reconstruct.events import MISSING, EventArrays
from folio_replay.replay.reconstruct.joins import latest_before
from folio_replay.replay.reconstruct.rss import process_of

__all__ = ["CALL_COLUMNS", "next_syscall", "syscall_calls", "syscall_rows"]

SYSCALL_EVENT_PREFIXES = ("sys_enter_", "sys_exit_")  # per-syscall events, not raw_syscalls

CALL_COLUMNS = [
    "enter_seq",
    "exit_seq",
    "pid",
    "process",
    "comm",
    "start_ns",
    "end_ns",
    "start_line",
    "end_line",
    "ret",
]


def syscall_rows(events: EventArrays) -> np.ndarray:
    """The rows of every per-syscall enter and exit event (worked out once per table)."""
    rows = events.derived.get(("syscall_rows",))
    if rows is None:
        names = (name for name in events.names if name.startswith(SYSCALL_EVENT_PREFIXES))
        rows = events.derived[("syscall_rows",)] = events.rows(*names)
    return rows  # type: ignore[return-value]


def next_syscall(events: EventArrays, rows: np.ndarray) -> np.ndarray:
    """For each of ``rows``, its thread's first per-syscall event after it (a thread that
    enters or leaves a syscall is in no other call, nor in reclaim), or MISSING."""
    calls = syscall_rows(events)
    # the earliest later row is the latest "before" in negated row order
    found = latest_before(events.pid[calls], -calls, events.pid[rows], -rows)
    return np.where(found >= 0, calls[np.maximum(found, 0)], MISSING)


def syscall_calls(
    events: EventArrays, syscall: str, args: dict[str, str] | None = None
) -> pd.DataFrame:
    """Each ``syscall`` call: its ``sys_enter_<syscall>`` row joined to the thread's next
    ``sys_exit_<syscall>``, when that is the thread's next per-syscall event (an exit missing
    from the trace leaves ``exit_seq`` -1 and the end columns null); ``args`` maps output
    column names to typed columns of the enter row. Ordered by start time. Worked out once per
    event table (several steps ask for the same calls)."""
    key = ("syscall_calls", syscall, tuple((args or {}).items()))
    calls = events.derived.get(key)
    if calls is None:
        calls = events.derived[key] = _calls(events, syscall, args or {})
    return calls.copy()


def _calls(events: EventArrays, syscall: str, args: dict[str, str]) -> pd.DataFrame:
    """:func:`syscall_calls`, worked out."""
    enter_name, exit_name = f"sys_enter_{syscall}", f"sys_exit_{syscall}"
    enter = events.rows(enter_name)
    following = next_syscall(events, enter)
    closed = events.is_event(exit_name, following)
    exit_ = np.where(closed, following, MISSING)
    frame = pd.DataFrame(
        {
            "enter_seq": enter,
            "exit_seq": exit_,
            "pid": events.pid[enter],
            "process": process_of(events, events.pid[enter], enter),
            "comm": events.comm(enter),
            "start_ns": events.ts[enter],
            "end_ns": pd.array(np.where(closed, events.ts[np.maximum(exit_, 0)], 0), dtype="Int64"),
            "start_line": events.line[enter],
            "end_line": pd.array(
                np.where(closed, events.line[np.maximum(exit_, 0)], 0), dtype="Int64"
            ),
            "ret": pd.array(events.ints("syscall.ret", np.maximum(exit_, 0)), dtype="Int64"),
        }
    )
    for column in ("end_ns", "end_line", "ret"):
        frame.loc[~closed, column] = pd.NA
    for name, column in args.items():
        frame[name] = (
            events.strings(column, enter)
            if column.endswith(".behavior")
            else events.ints(column, enter)
        )
    return frame
