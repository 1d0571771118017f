"""Reclaim episodes: the windows in which the kernel reclaimed memory, one kind per path.

Kinds and the events that bound them (all in the reclaiming thread's context):
- ``madvise_pageout``: ``sys_enter_madvise`` with MADV_PAGEOUT → the thread's
  ``sys_exit_madvise`` (``process_madvise_pageout`` likewise for process_madvise, which
  reclaims another process's folios: mm/madvise.c, both end in reclaim_pages());
- ``kswapd``: ``mm_vmscan_kswapd_wake`` → ``mm_vmscan_kswapd_sleep`` of the kswapd thread;
- ``direct_reclaim``: ``mm_vmscan_direct_reclaim_begin`` → ``..._end`` (global direct reclaim
  of an allocating task, try_to_free_pages());
- ``memcg_reclaim``: ``mm_vmscan_memcg_reclaim_begin`` → ``..._end`` (try_to_free_mem_cgroup_pages:
  a memcg over its limit (v1 memory.limit_in_bytes, v2 memory.max, memory.high on return to user
  mode) in the charging task, or a kworker for memory.high);
- ``proactive_reclaim``: the memcg reclaim pairs inside one short ``write()`` of the same thread
  (v2 memory.reclaim, v1 memory.force_empty: both call try_to_free_mem_cgroup_pages and emit the
  same events as limit reclaim, mm/memcontrol.c memory_reclaim(), mm/memcontrol-v1.c
  mem_cgroup_force_empty(); no event field tells them apart, checked in 6.12.116-118, 7.0.13 and
  7.3.4 source), so the write of a few bytes around them is the evidence;
- ``softlimit_reclaim``: ``mm_vmscan_memcg_softlimit_reclaim_begin`` → ``..._end`` (v1 soft limit);
- ``node_reclaim``: ``mm_vmscan_node_reclaim_begin`` → ``..._end`` (zone_reclaim_mode, 6.18+
  per-node proactive reclaim).
A window of a thread that lies inside another window of the same thread (soft-limit reclaim
inside kswapd or direct reclaim, say) is folded into the outer one (``nested`` counts them).
``duration_ns`` is the measured begin → end time; ``mm_vmscan_*`` counts are summed over the
thread's vmscan events inside the window.

A window whose closing event the trace lost (a ring-buffer overrun) ends before its thread's
next per-syscall event, which it cannot reach while still in the call or in reclaim
(``last_seq``; :func:`~.syscalls.next_syscall`), or with the trace when there is none (kswapd
makes no syscalls).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from folio_replay.replay.reconstruct.events import MISSING, EventArrays
from folio_replay.replay.reconstruct.joins import nullable
from folio_replay.replay.reconstruct.syscalls import next_syscall, syscall_calls, syscall_rows

__all__ = [
    "BOUNDARY_EVENTS",
    "EPISODE_COLUMNS",
    "PROACTIVE_WRITE_BYTES",
    "Windows",
    "find_episodes",
    "lost_end",
]

# mm_vmscan_lru_shrink_inactive's counts of shrink_folio_list() (mm/vmscan.c): pages scanned,
# reclaimed, whose unmap failed, activated, and kept for their references (FOLIOREF_KEEP of
# folio_check_references(): reclaim met them and never tried to unmap them)
VMSCAN_COUNTS = ("nr_scanned", "nr_reclaimed", "nr_unmap_fail", "nr_activate_anon", "nr_ref_keep")
BOUNDARY_EVENTS = {
    "kswapd": ("mm_vmscan_kswapd_wake", "mm_vmscan_kswapd_sleep"),
    "direct_reclaim": ("mm_vmscan_direct_reclaim_begin", "mm_vmscan_direct_reclaim_end"),
    "memcg_reclaim": ("mm_vmscan_memcg_reclaim_begin", "mm_vmscan_memcg_reclaim_end"),
    "softlimit_reclaim": (
        "mm_vmscan_memcg_softlimit_reclaim_begin",
        "mm_vmscan_memcg_softlimit_reclaim_end",
    ),
    "node_reclaim": ("mm_vmscan_node_reclaim_begin", "mm_vmscan_node_reclaim_end"),
}
PAGEOUT_SYSCALLS = {"madvise": "madvise_pageout", "process_madvise": "process_madvise_pageout"}
# A write() to memory.reclaim or memory.force_empty carries a size ("1G\n") or "0": a few
# bytes. A page-cache write of this size that has to reclaim for its own charge is possible but
# rare; the episode's evidence names the write either way.
PROACTIVE_WRITE_BYTES = 64
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
    "start_seq",
    "end_seq",
    "last_seq",
    "range_start",
    "range_len",
    "ret",
    "vmscan_events",
    *VMSCAN_COUNTS,
    "memcg_id",
    "nested",
    "evidence",
]


class Windows:
    """Episodes as non-overlapping [start_seq, last_seq] windows per thread, for locating rows
    (columns ``pid``, ``start_seq``, ``last_seq`` and ``episode``)."""

    def __init__(self, episodes: pd.DataFrame) -> None:
        self.by_pid: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        ends = episodes["last_seq"].to_numpy()
        for pid, group in episodes.groupby("pid").indices.items():
            order = group[np.argsort(episodes["start_seq"].to_numpy()[group])]
            self.by_pid[int(pid)] = (
                episodes["start_seq"].to_numpy()[order],
                ends[order],
                episodes["episode"].to_numpy()[order],
            )

    def locate(self, pids: np.ndarray, seqs: np.ndarray) -> np.ndarray:
        """The episode of each (thread, row), or -1 when the row is in none."""
        found = np.full(len(seqs), -1, dtype=np.int64)
        for pid, (starts, ends, numbers) in self.by_pid.items():
            mine = np.flatnonzero(pids == pid)
            if not len(mine):
                continue
            at = np.searchsorted(starts, seqs[mine], "right") - 1
            inside = (at >= 0) & (seqs[mine] <= ends[np.maximum(at, 0)])
            found[mine[inside]] = numbers[at[inside]]
        return found


def lost_end(episodes: pd.DataFrame, rows: int) -> np.ndarray:
    """Whether each episode's closing event was lost (it ends before its thread's next
    syscall event) in a table of ``rows`` rows; an episode still open at the table's end
    holds its last row."""
    return (episodes["end_seq"].to_numpy() < 0) & (episodes["last_seq"].to_numpy() < rows - 1)


def _boundary_windows(events: EventArrays) -> pd.DataFrame:
    """Begin → end windows of every boundary kind, per thread (a begin while a window of the
    same kind is open is ignored: kswapd_wake while awake). A window still open at its
    thread's next per-syscall event lost its end and ends before that event; one still open
    at the end of the trace ends with it."""
    frames = []
    calls = syscall_rows(events)
    for kind, (begin, end) in BOUNDARY_EVENTS.items():
        rows = events.rows(begin, end)
        if not len(rows):
            continue
        pids = events.pid[rows]
        theirs = calls[np.isin(events.pid[calls], pids)]
        merged = np.concatenate([rows, theirs])
        role = np.concatenate(
            [np.where(events.is_event(begin, rows), 0, 1), np.full(len(theirs), 2)]
        )
        order = np.argsort(merged, kind="stable")
        starts, stops, lasts = [], [], []
        open_at: dict[int, int] = {}
        for row, what, pid in zip(
            merged[order].tolist(), role[order].tolist(), events.pid[merged[order]].tolist()
        ):
            if what == 0:
                open_at.setdefault(pid, row)
            elif pid in open_at:
                starts.append(open_at.pop(pid))
                stops.append(row if what == 1 else MISSING)
                lasts.append(row if what == 1 else row - 1)
        for row in open_at.values():
            starts.append(row)
            stops.append(MISSING)
            lasts.append(events.n - 1)
        frames.append(
            pd.DataFrame({"kind": kind, "start_seq": starts, "end_seq": stops, "last_seq": lasts})
        )
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame({"kind": [], "start_seq": [], "end_seq": [], "last_seq": []})
    )


def _lost_end_bounds(events: EventArrays, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The last row each syscall window can hold: its exit, or, the exit lost, the row before
    its thread's next per-syscall event, or the trace's last row."""
    following = next_syscall(events, starts)
    bound = np.where(following >= 0, following - 1, events.n - 1)
    return np.where(ends >= 0, ends, bound)


def _pageout_windows(events: EventArrays) -> pd.DataFrame:
    """MADV_PAGEOUT calls of madvise and process_madvise."""
    frames = []
    for syscall, kind in PAGEOUT_SYSCALLS.items():
        if not events.has(f"sys_enter_{syscall}"):
            continue
        args = {"behavior": f"{syscall}.behavior"}
        if syscall == "madvise":
            args |= {"range_start": "madvise.start", "range_len": "madvise.len"}
        calls = syscall_calls(events, syscall, args)
        calls = calls[calls["behavior"] == "MADV_PAGEOUT"]
        frames.append(
            pd.DataFrame(
                {
                    "kind": kind,
                    "start_seq": calls["enter_seq"].to_numpy(),
                    "end_seq": calls["exit_seq"].to_numpy(),
                    "last_seq": _lost_end_bounds(
                        events, calls["enter_seq"].to_numpy(), calls["exit_seq"].to_numpy()
                    ),
                    "range_start": calls.get("range_start", pd.Series(MISSING, index=calls.index)),
                    "range_len": calls.get("range_len", pd.Series(MISSING, index=calls.index)),
                    "ret": calls["ret"],
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _proactive_writes(events: EventArrays, windows: pd.DataFrame) -> pd.DataFrame:
    """Fold the memcg reclaim windows that lie inside a short write() of the same thread into
    one ``proactive_reclaim`` window per write."""
    memcg = windows[windows["kind"] == "memcg_reclaim"]
    if memcg.empty or not events.has("sys_enter_write"):
        return windows
    writes = syscall_calls(events, "write", {"count": "write.count"})
    writes = writes[(writes["count"] <= PROACTIVE_WRITE_BYTES) & (writes["exit_seq"] >= 0)]
    if writes.empty:
        return windows
    pids = events.pid[memcg["start_seq"].to_numpy()]
    inside = Windows(
        pd.DataFrame(
            {
                "pid": writes["pid"].to_numpy(),
                "start_seq": writes["enter_seq"].to_numpy(),
                "last_seq": writes["exit_seq"].to_numpy(),
                "episode": np.arange(len(writes)),
            }
        )
    ).locate(pids, memcg["start_seq"].to_numpy())
    folded = memcg[inside >= 0]
    if folded.empty:
        return windows
    used = writes.iloc[np.unique(inside[inside >= 0])]
    counts = np.bincount(inside[inside >= 0], minlength=len(writes))[np.unique(inside[inside >= 0])]
    proactive = pd.DataFrame(
        {
            "kind": "proactive_reclaim",
            "start_seq": used["enter_seq"].to_numpy(),
            "end_seq": used["exit_seq"].to_numpy(),
            "last_seq": used["exit_seq"].to_numpy(),
            "nested": counts,
            "write_bytes": used["count"].to_numpy(),
        }
    )
    return pd.concat([windows.drop(folded.index), proactive], ignore_index=True)


def _fold_nested(windows: pd.DataFrame) -> pd.DataFrame:
    """Drop windows inside an earlier-starting window of the same thread; count them there."""
    windows = windows.sort_values(["pid", "start_seq"], kind="stable").reset_index(drop=True)
    ends = windows["last_seq"].to_numpy()
    keep = np.ones(len(windows), dtype=bool)
    nested = windows["nested"].to_numpy().copy()
    outer, outer_end, outer_pid = -1, -1, None  # sorted: an outer window starts first
    for i, (pid, end) in enumerate(zip(windows["pid"].tolist(), ends.tolist())):
        if pid == outer_pid and end <= outer_end:
            keep[i] = False
            nested[outer] += 1 + nested[i]
            continue
        outer, outer_end, outer_pid = i, end, pid
    return windows.assign(nested=nested)[keep]


def _nullable_ints(column: pd.Series) -> pd.arrays.IntegerArray:
    """An int column of the windows, null where MISSING or absent (NaN: the windows of kinds
    without it, such as memory.reclaim's, which advise no range)."""
    values = column.fillna(MISSING).to_numpy(np.int64)
    return nullable(values, values != MISSING)


def find_episodes(events: EventArrays) -> pd.DataFrame:
    """All reclaim episodes of the trace, in time order, numbered from 0."""
    windows = pd.concat([_boundary_windows(events), _pageout_windows(events)], ignore_index=True)
    if windows.empty:
        return pd.DataFrame(columns=EPISODE_COLUMNS)
    for column in ("range_start", "range_len"):
        windows[column] = windows[column].fillna(MISSING) if column in windows else MISSING
    windows["ret"] = windows.get("ret", pd.NA)
    windows["nested"] = 0
    windows = windows.astype({"start_seq": np.int64, "end_seq": np.int64, "last_seq": np.int64})
    windows = _proactive_writes(events, windows)
    windows["nested"] = windows["nested"].fillna(0).astype(np.int64)
    windows["pid"] = events.pid[windows["start_seq"].to_numpy()]
    windows = _fold_nested(windows)
    windows = windows.sort_values(["start_seq"], kind="stable").reset_index(drop=True)
    start = windows["start_seq"].to_numpy()
    end = windows["end_seq"].to_numpy()
    closed = end >= 0
    end_rows = np.maximum(end, 0)
    episodes = pd.DataFrame(
        {
            "episode": np.arange(len(windows), dtype=np.int64),
            "kind": windows["kind"].to_numpy(),
            "pid": events.pid[start],
            "comm": events.comm(start),
            "start_ns": events.ts[start],
            "end_ns": nullable(events.ts[end_rows], closed),
            "duration_ns": nullable(events.ts[end_rows] - events.ts[start], closed),
            "start_line": events.line[start],
            "end_line": nullable(events.line[end_rows], closed),
            "start_seq": start,
            "end_seq": end,
            "last_seq": windows["last_seq"].to_numpy(),
            "range_start": _nullable_ints(windows["range_start"]),
            "range_len": _nullable_ints(windows["range_len"]),
            "ret": pd.array(windows["ret"], dtype="Int64"),
            "nested": windows["nested"].to_numpy(np.int64),
        }
    )
    _vmscan_counts(events, episodes)
    lost = lost_end(episodes, events.n)
    next_line = np.where(lost, events.line[np.minimum(episodes["last_seq"] + 1, events.n - 1)], -1)
    episodes["evidence"] = _evidence(episodes, windows, next_line)
    return episodes[EPISODE_COLUMNS]


def _vmscan_counts(events: EventArrays, episodes: pd.DataFrame) -> None:
    """Sum the counts of each episode thread's mm_vmscan_* events inside its window; the
    cgroup id of 7.1+ memcg reclaim events (``memcg_id``) where the trace has it."""
    rows = events.rows_with_prefix("mm_vmscan_")
    scanned = events.ints("vmscan.nr_scanned", rows)
    where = Windows(episodes).locate(events.pid[rows], rows)
    counted = (where >= 0) & (scanned != MISSING)
    n = len(episodes)
    episodes["vmscan_events"] = np.bincount(where[counted], minlength=n).astype(np.int64)
    for count in VMSCAN_COUNTS:
        values = np.maximum(events.ints(f"vmscan.{count}", rows[counted]), 0)
        episodes[count] = np.bincount(where[counted], weights=values, minlength=n).astype(np.int64)
    memcg = events.ints("vmscan.memcg_id", rows)
    tagged = (where >= 0) & (memcg != MISSING)
    memcg_id = np.full(n, MISSING, dtype=np.int64)
    memcg_id[where[tagged]] = memcg[tagged]
    episodes["memcg_id"] = nullable(memcg_id, memcg_id != MISSING)


def _evidence(episodes: pd.DataFrame, windows: pd.DataFrame, next_line: np.ndarray) -> list[str]:
    """What each episode rests on (``next_line``: the line of the thread's next syscall event
    that ends a window whose closing event was lost, else -1)."""
    texts = []
    write_bytes = windows.get("write_bytes")
    for i, row in enumerate(episodes.itertuples(index=False)):
        if row.end_seq >= 0:
            closed = f"line {row.end_line}"
        elif next_line[i] >= 0:
            closed = (
                "closing event lost, ended before its thread's syscall event at line "
                f"{next_line[i]}"
            )
        else:
            closed = "no closing event in the trace"
        text = (
            f"{row.kind} lines {row.start_line}→{closed}; {row.vmscan_events} mm_vmscan_* "
            "events in window"
        )
        if row.kind == "proactive_reclaim" and write_bytes is not None:
            text += (
                f"; {row.nested} memcg_reclaim begin/end pairs inside a write() of "
                f"{int(write_bytes.iat[i])} bytes (memory.reclaim or memory.force_empty)"
            )
        elif row.nested:
            text += f"; {row.nested} nested reclaim windows folded in"
        texts.append(text)
    return texts
