"""Reclaim episodes: the windows in which the kernel reclaimed memory, with their measured cost.

Kinds and the events that bound them:
- ``madvise_pageout``: ``sys_enter_madvise`` with MADV_PAGEOUT → the same pid's
  ``sys_exit_madvise`` (``process_madvise_pageout`` likewise for process_madvise);
- ``kswapd``: ``mm_vmscan_kswapd_wake`` → the same pid's ``mm_vmscan_kswapd_sleep``;
- ``direct_reclaim``: ``mm_vmscan_direct_reclaim_begin`` → the same pid's ``..._end``.
``duration_ns`` is the measured enter → exit time; ``mm_vmscan_*`` counts are summed over the
pid's vmscan events inside the window.
"""

from __future__ import annotations

import pandas as pd
from folio_replay.replay.reconstruct.syscalls import syscall_windows

VMSCAN_COUNTS = ("nr_scanned", "nr_reclaimed", "nr_unmap_fail", "nr_activate_anon")
BOUNDARY_EVENTS = {
    "kswapd": ("mm_vmscan_kswapd_wake", "mm_vmscan_kswapd_sleep"),
    "direct_reclaim": ("mm_vmscan_direct_reclaim_begin", "mm_vmscan_direct_reclaim_end"),
}
EPISODE_COLUMNS = [
    "episode",
    "kind",
    "pid",
    "comm",
    "start_ns",
    "end_ns",
    "duration_ns",
    "start_line",
    "end_line",
    "range_start",
    "range_len",
    "ret",
    "vmscan_events",
    *VMSCAN_COUNTS,
    "evidence",
]


def _pageout_windows(events: pd.DataFrame) -> list[dict]:
    """MADV_PAGEOUT calls of madvise and process_madvise."""
    windows = []
    for syscall in ("madvise", "process_madvise"):
        if f"sys_enter_{syscall}" not in set(events["event"]):
            continue
        for call in syscall_windows(events, syscall):
            if call[f"{syscall}.behavior"] != "MADV_PAGEOUT":
                continue
            windows.append(
                {
                    "kind": f"{'' if syscall == 'madvise' else 'process_'}madvise_pageout",
                    "pid": call["pid"],
                    "comm": call["comm"],
                    "start_ns": call["start_ns"],
                    "end_ns": call["end_ns"],
                    "start_line": call["start_line"],
                    "end_line": call["end_line"],
                    "range_start": call.get("madvise.start") if syscall == "madvise" else None,
                    "range_len": call.get("madvise.len") if syscall == "madvise" else None,
                    "ret": call["ret"],
                }
            )
    return windows


def _vmscan_windows(events: pd.DataFrame) -> list[dict]:
    """kswapd wake → sleep and direct reclaim begin → end windows."""
    windows = []
    for kind, (begin, end) in BOUNDARY_EVENTS.items():
        rows = events[events["event"].isin([begin, end])].sort_values(["ts_ns", "line"])
        open_windows: dict[int, dict] = {}
        for row in rows.to_dict("records"):
            if row["event"] == begin:
                if row["pid"] in open_windows:
                    continue  # kswapd_wake while awake: the window is already open
                open_windows[row["pid"]] = {
                    "kind": kind,
                    "pid": row["pid"],
                    "comm": row["comm"],
                    "start_ns": row["ts_ns"],
                    "start_line": row["line"],
                    "end_ns": None,
                    "end_line": None,
                    "range_start": None,
                    "range_len": None,
                    "ret": None,
                }
            elif row["pid"] in open_windows:
                window = open_windows.pop(row["pid"])
                window.update(end_ns=row["ts_ns"], end_line=row["line"])
                windows.append(window)
        windows.extend(open_windows.values())
    return windows


def window_rows(events: pd.DataFrame, episode: dict | pd.Series) -> pd.DataFrame:
    """The episode's pid's events inside its window (to the trace's end if it never closed)."""
    end = episode["end_ns"]
    inside = (events["pid"] == episode["pid"]) & (events["ts_ns"] >= episode["start_ns"])
    if end is not None and not pd.isna(end):
        inside &= events["ts_ns"] <= end
    return events[inside]


def find_episodes(events: pd.DataFrame) -> pd.DataFrame:
    """All reclaim episodes of the trace, in time order, numbered from 0."""
    episodes = sorted(
        _pageout_windows(events) + _vmscan_windows(events),
        key=lambda window: (window["start_ns"], window["start_line"]),
    )
    for number, episode in enumerate(episodes):
        rows = window_rows(events, episode)
        vmscan = rows[
            rows["event"].str.startswith("mm_vmscan_") & rows["vmscan.nr_scanned"].notna()
        ]
        episode["episode"] = number
        episode["duration_ns"] = (
            episode["end_ns"] - episode["start_ns"] if episode["end_ns"] is not None else None
        )
        episode["vmscan_events"] = len(vmscan)
        for count in VMSCAN_COUNTS:
            episode[count] = int(vmscan[f"vmscan.{count}"].fillna(0).sum())
        closed = (
            f"line {episode['end_line']}"
            if episode["end_line"] is not None
            else "no closing event in the trace"
        )
        episode["evidence"] = (
            f"{episode['kind']} lines {episode['start_line']}→{closed}; "
            f"{len(vmscan)} mm_vmscan_* events in window"
        )
    return pd.DataFrame(episodes, columns=EPISODE_COLUMNS)
