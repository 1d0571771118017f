"""The large-folio ledger: each large folio a process faulted in, from allocation to free or split.

Evidence used, per folio: the ``mm_page_alloc`` row (pfn, order: the folio size) in the
faulting process's context, the ``page_fault_user`` row just before it on the same pid (x86
only: the user address; arm64 and riscv have no such tracepoint, so their folios carry no
address), the ``mm_page_free`` row of the same pfn and order (the folio freed whole), or the
first order-0 ``mm_page_free`` inside its pfn range (the folio was split into small pages).
"""

from __future__ import annotations

import pandas as pd

# User folio allocations: anonymous faults use GFP_HIGHUSER_MOVABLE (small pages) and
# GFP_TRANSHUGE{,_LIGHT} (mTHP and PMD THP, vma_thp_gfp_mask() in mm/huge_memory.c).
USER_GFP_MARKERS = ("HIGHUSER_MOVABLE", "TRANSHUGE")

LEDGER_COLUMNS = [
    "folio",
    "pid",
    "comm",
    "pfn",
    "order",
    "nr_pages",
    "size_kb",
    "address",
    "alloc_ns",
    "alloc_line",
    "end_ns",
    "end_line",
    "end",
    "evidence",
]


def build_ledger(events: pd.DataFrame) -> pd.DataFrame:
    """One row per large user folio allocated in the trace.

    ``end`` is ``freed`` (freed whole at ``end_ns``), ``split`` (an order-0 page of it freed
    first) or ``alive`` (still allocated when the trace ends).
    """
    page_rows = events[events["event"].isin(["mm_page_alloc", "mm_page_free", "page_fault_user"])]
    page_rows = page_rows.sort_values(["ts_ns", "line"])
    last_fault: dict[int, int] = {}
    alive: dict[tuple[int, int], dict] = {}
    orders: set[int] = set()
    folios: list[dict] = []
    for row in page_rows.to_dict("records"):
        event = row["event"]
        if event == "page_fault_user":
            last_fault[row["pid"]] = int(row["fault.address"])
            continue
        pfn, order = int(row["page.pfn"]), int(row["page.order"])
        if event == "mm_page_alloc":
            gfp = row["page.gfp_flags"] or ""
            if order == 0 or not any(marker in gfp for marker in USER_GFP_MARKERS):
                continue
            size = 4096 << order
            fault = last_fault.pop(row["pid"], None)
            folio = {
                "folio": len(folios),
                "pid": row["pid"],
                "comm": row["comm"],
                "pfn": pfn,
                "order": order,
                "nr_pages": 1 << order,
                "size_kb": size // 1024,
                "address": fault - fault % size if fault is not None else None,
                "alloc_ns": row["ts_ns"],
                "alloc_line": row["line"],
                "end_ns": None,
                "end_line": None,
                "end": "alive",
                "evidence": f"mm_page_alloc line {row['line']}"
                + (" after page_fault_user" if fault is not None else ""),
            }
            folios.append(folio)
            alive[(order, pfn)] = folio
            orders.add(order)
            continue
        folio = alive.pop((order, pfn), None) if order else None
        end = "freed"
        if order == 0:
            for candidate in orders:
                folio = alive.pop((candidate, pfn - pfn % (1 << candidate)), None)
                if folio is not None:
                    end = "split"
                    break
        if folio is not None:
            folio.update(end=end, end_ns=row["ts_ns"], end_line=row["line"])
            folio["evidence"] += f"; mm_page_free order {order} line {row['line']}"
    return pd.DataFrame(folios, columns=LEDGER_COLUMNS)


def alive_at(ledger: pd.DataFrame, ts_ns: int, pid: int) -> pd.DataFrame:
    """The folios of ``pid`` allocated before ``ts_ns`` and not freed or split before it."""
    ended_before = ledger["end_ns"].notna() & (ledger["end_ns"].fillna(0) < ts_ns)
    return ledger[(ledger["pid"] == pid) & (ledger["alloc_ns"] < ts_ns) & ~ended_before]
