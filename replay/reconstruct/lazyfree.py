"""Lazyfree marking: each MADV_FREE call, its range, and the large folios it made lazyfree.

Evidence: the ``sys_enter_madvise``/``sys_exit_madvise`` pair (range, return value); the
caller's ledger folios alive at the call and, where the trace gives addresses (x86), inside the
range; ``mm_lru_insertion`` rows of the caller in the window whose flags lack ``b``
(anon, not swapbacked: lazyfree) — Linux 6.18 moves lazyfree folios with lru_lazyfree() without
that event, so the count is often 0 and is corroboration only.
"""

from __future__ import annotations

import pandas as pd
from folio_replay.replay.reconstruct.ledger import alive_at
from folio_replay.replay.reconstruct.syscalls import syscall_windows

LAZYFREE_COLUMNS = [
    "pid",
    "comm",
    "start_ns",
    "end_ns",
    "start_line",
    "end_line",
    "range_start",
    "range_len",
    "ret",
    "folios",
    "folio_sizes_kb",
    "lazyfree_insertions",
    "evidence",
]


def in_range(folios: pd.DataFrame, start: int, length: int) -> pd.DataFrame:
    """The folios inside [start, start+length); folios without an address are kept (unknown)."""
    address = folios["address"]
    inside = (address >= start) & (address + folios["size_kb"] * 1024 <= start + length)
    return folios[address.isna() | inside.fillna(False).astype(bool)]


def lazyfree_calls(events: pd.DataFrame, ledger: pd.DataFrame) -> pd.DataFrame:
    """One row per MADV_FREE call."""
    if "sys_enter_madvise" not in set(events["event"]):
        return pd.DataFrame(columns=LAZYFREE_COLUMNS)
    rows = []
    for call in syscall_windows(events, "madvise"):
        if call["madvise.behavior"] != "MADV_FREE":
            continue
        start, length = int(call["madvise.start"]), int(call["madvise.len"])
        folios = in_range(alive_at(ledger, call["start_ns"], call["pid"]), start, length)
        window = events[
            (events["pid"] == call["pid"])
            & (events["ts_ns"] >= call["start_ns"])
            & (events["ts_ns"] <= (call["end_ns"] or call["start_ns"]))
        ]
        insertions = window[window["event"] == "mm_lru_insertion"]["lru_insertion.flags"]
        lazy = int((insertions.str.contains("a") & ~insertions.str.contains("b")).sum())
        sizes = folios["size_kb"].value_counts().sort_index()
        addressed = folios["address"].notna().all()
        rows.append(
            {
                "pid": call["pid"],
                "comm": call["comm"],
                "start_ns": call["start_ns"],
                "end_ns": call["end_ns"],
                "start_line": call["start_line"],
                "end_line": call["end_line"],
                "range_start": start,
                "range_len": length,
                "ret": call["ret"],
                "folios": len(folios),
                "folio_sizes_kb": ",".join(f"{size}:{count}" for size, count in sizes.items()),
                "lazyfree_insertions": lazy,
                "evidence": (
                    f"madvise lines {call['start_line']}→{call['end_line']}; "
                    + (
                        "folios in range by fault address"
                        if addressed
                        else "caller's live folios (no addresses in this trace)"
                    )
                    + f"; {lazy} mm_lru_insertion without swapbacked"
                ),
            }
        )
    return pd.DataFrame(rows, columns=LAZYFREE_COLUMNS)
