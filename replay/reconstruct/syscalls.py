"""Pair syscall enter and exit events of one thread into call windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
from folio_replay.replay.reconstruct.events import MISSING, EventArrays
from folio_replay.replay.reconstruct.joins import next_in_group
from folio_replay.replay.reconstruct.rss import process_of

__all__ = ["CALL_COLUMNS", "syscall_calls"]

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


def syscall_calls(
    events: EventArrays, syscall: str, args: dict[str, str] | None = None
) -> pd.DataFrame:
    """Each ``syscall`` call: its ``sys_enter_<syscall>`` row joined to the thread's next
    ``sys_exit_<syscall>`` (an exit missing from the trace leaves ``exit_seq`` -1 and the end
    columns null); ``args`` maps output column names to typed columns of the enter row.
    Ordered by start time. Worked out once per event table (several steps ask for the same
    calls)."""
    key = ("syscall_calls", syscall, tuple((args or {}).items()))
    calls = events.derived.get(key)
    if calls is None:
        calls = events.derived[key] = _calls(events, syscall, args or {})
    return calls.copy()


def _calls(events: EventArrays, syscall: str, args: dict[str, str]) -> pd.DataFrame:
    """:func:`syscall_calls`, worked out."""
    enter_name, exit_name = f"sys_enter_{syscall}", f"sys_exit_{syscall}"
    rows = events.rows(enter_name, exit_name)
    is_enter = events.event_names(rows) == enter_name
    order, following = next_in_group(events.pid[rows], rows)
    sorted_rows, sorted_enter = rows[order], is_enter[order]
    closes = sorted_enter & (following >= 0)
    closes[closes] = ~sorted_enter[following[closes]]
    exit_of = np.full(len(order), MISSING, dtype=np.int64)
    exit_of[closes] = sorted_rows[following[closes]]
    enter, exit_ = sorted_rows[sorted_enter], exit_of[sorted_enter]
    by_time = np.argsort(enter, kind="stable")
    enter, exit_ = enter[by_time], exit_[by_time]
    closed = exit_ >= 0
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
