"""Pair syscall enter and exit events of one thread into call windows."""

from __future__ import annotations

import pandas as pd


def syscall_windows(events: pd.DataFrame, syscall: str) -> list[dict]:
    """Each ``syscall`` call: its ``sys_enter_<syscall>`` row joined to the pid's next exit.

    Each call is the enter row (a dict with the event table's columns) plus ``start_ns``,
    ``end_ns`` and ``end_line`` (None when the exit is not in the trace), ``start_line`` and
    ``ret``; ordered by start time.
    """
    enter_name, exit_name = f"sys_enter_{syscall}", f"sys_exit_{syscall}"
    rows = events[events["event"].isin([enter_name, exit_name])].sort_values(["ts_ns", "line"])
    calls, open_calls = [], {}
    for row in rows.to_dict("records"):
        if row["event"] == enter_name:
            call = dict(
                row,
                start_ns=row["ts_ns"],
                start_line=row["line"],
                end_ns=None,
                end_line=None,
                ret=None,
            )
            open_calls[row["pid"]] = call
            calls.append(call)
            continue
        call = open_calls.pop(row["pid"], None)
        if call is not None:
            call.update(end_ns=row["ts_ns"], end_line=row["line"], ret=row["syscall.ret"])
    return calls
