"""Replay each reclaimed folio through the unmap models and price it per architecture.

A folio whose dirty page the trace leaves open (``UNKNOWN_DIRTY_PAGE``) is replayed once per
possible dirty page (:func:`folio_replay.replay.folio.expand_unknown`: first page ... last page);
per-folio
results are summed into low and high bounds (the folios are independent, so the sum of the lows
is the low of the sum). Results are cached per distinct state: reclaim sees many equal folios.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pandas as pd
from folio_replay.replay.costs.tables import load_table
from folio_replay.replay.folio import FolioState, UnmapResult, expand_unknown
from folio_replay.replay.models import unmap

COUNTERS = ("split_deferred", "thp_split_pmd", "thp_deferred_split_page", "pglazyfreed")
# Flush primitives of replay/costs/ops.toml [flush], summed in the predictions table:
# TLB invalidation instructions (per entry, range, ASID or all) and cross-CPU requests.
INVALIDATIONS = (
    "invlpg",
    "flush_full",
    "tlbi_va",
    "tlbi_range",
    "tlbi_asid",
    "sfence_vma_page",
    "sfence_vma_asid",
    "sfence_vma_all",
)
CROSS_CPU = ("ipi_shootdown", "sbi_rfence")
CONTPTE_PAGES = 16  # arm64 4K granule: CONT_PTES (arch/arm64/include/asm/pgtable-hwdef.h)


def folio_states(folio: dict, arch: str) -> list[FolioState]:
    """The possibilities the trace leaves for one folio record on ``arch``."""
    dirty = folio["dirty_page"]
    dirty = None if dirty is None or pd.isna(dirty) else int(dirty)
    nr_pages = int(folio["nr_pages"])
    pmd = bool(folio["pmd_mapped"])
    contpte = arch == "arm64" and nr_pages % CONTPTE_PAGES == 0
    return expand_unknown(
        FolioState(nr_pages=nr_pages, pmd_mapped=pmd, dirty_page=dirty, contpte=contpte)
    )


@dataclass
class Bounds:
    """Low/high sums of what a model does to a set of folios on one architecture.

    Counters include the ``zap_counters`` of kept folios the trace shows zapped later (a folio
    still mapped when the trace and the stats snapshot end has not moved them). ``time`` is the
    untraced price, ``traced`` adds the tracepoint records a capture pays for.
    """

    folios: int = 0
    low: Counter = field(default_factory=Counter)
    high: Counter = field(default_factory=Counter)
    primitives: Counter = field(default_factory=Counter)  # of the cheapest variant, flushes too
    time_low: float = 0.0
    time_high: float = 0.0
    traced_low: float = 0.0
    traced_high: float = 0.0

    def add(
        self,
        results: list[UnmapResult],
        prices: list[tuple[float, float]],
        primitives: list[Counter],
        zapped: bool,
    ) -> None:
        """Add one folio's possible results, their (untraced, traced) prices, their primitive
        op counts on the arch, and whether it was zapped later in the trace."""
        self.folios += 1
        names = set().union(
            *(r.counters for r in results), *(r.zap_counters for r in results), ("flushes",)
        )
        for name in names:
            values = [
                len(r.flushes)
                if name == "flushes"
                else r.counters[name] + (r.zap_counters[name] if zapped else 0)
                for r in results
            ]
            self.low[name] += min(values)
            self.high[name] += max(values)
        plain = [price for price, _ in prices]
        traced = [price for _, price in prices]
        self.primitives.update(primitives[plain.index(min(plain))])
        self.time_low += min(plain)
        self.time_high += max(plain)
        self.traced_low += min(traced)
        self.traced_high += max(traced)


def load_tables(archs: list[str], costs: str | None) -> dict:
    """The cost table per architecture: the shipped table of each arch, except that a user's
    table ``costs`` (a TOML path) replaces the one of its own arch."""
    custom = load_table(costs) if costs else None
    return {
        arch: custom if custom is not None and custom.arch == arch else load_table(arch)
        for arch in archs
    }


def replay_folios(folios: pd.DataFrame, models: list[str], tables: dict) -> dict:
    """``{(model, arch, episode, size_kb): Bounds}`` for every folio record."""
    bounds: dict[tuple, Bounds] = {}
    prices: dict[tuple, tuple[float, float]] = {}
    primitives: dict[tuple, Counter] = {}
    for folio in folios.to_dict("records"):
        for arch, table in tables.items():
            states = folio_states(folio, arch)
            for model in models:
                results = [unmap(model, state) for state in states]
                for state, result in zip(states, results):
                    if (arch, model, state) not in prices:
                        prices[(arch, model, state)] = (
                            table.price(result),
                            table.price(result, traced=True),
                        )
                        primitives[(arch, model, state)] = table.primitive_counts(result)
                folio_prices = [prices[(arch, model, state)] for state in states]
                folio_primitives = [primitives[(arch, model, state)] for state in states]
                key = (model, arch, int(folio["episode"]), int(folio["size_kb"]))
                zapped = folio["zapped_later"] if folio["outcome"] == "kept" else False
                bounds.setdefault(key, Bounds()).add(
                    results, folio_prices, folio_primitives, zapped
                )
    return bounds


PREDICTION_COLUMNS = [
    "model",
    "arch",
    "episode",
    "size_kb",
    "folios",
    *(f"{name}_{bound}" for name in (*COUNTERS, "flushes") for bound in ("low", "high")),
    "tlb_invalidations",
    "cross_cpu_requests",
    "time_ns_low",
    "time_ns_high",
    "time_ns",
    "traced_time_ns",
    "primitives",
]


def predictions_frame(bounds: dict) -> pd.DataFrame:
    """The ``predictions`` report table (one row per model, arch, episode, folio size)."""
    rows = []
    for (model, arch, episode, size_kb), b in sorted(bounds.items()):
        row = {
            "model": model,
            "arch": arch,
            "episode": episode,
            "size_kb": size_kb,
            "folios": b.folios,
        }
        for name in (*COUNTERS, "flushes"):
            row[f"{name}_low"] = int(b.low[name])
            row[f"{name}_high"] = int(b.high[name])
        row["tlb_invalidations"] = sum(b.primitives[op] for op in INVALIDATIONS)
        row["cross_cpu_requests"] = sum(b.primitives[op] for op in CROSS_CPU)
        row["time_ns_low"] = b.time_low
        row["time_ns_high"] = b.time_high
        row["time_ns"] = (b.time_low + b.time_high) / 2
        row["traced_time_ns"] = (b.traced_low + b.traced_high) / 2
        row["primitives"] = ",".join(f"{op}={n:g}" for op, n in sorted(b.primitives.items()))
        rows.append(row)
    return pd.DataFrame(rows, columns=PREDICTION_COLUMNS)
