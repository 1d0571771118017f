"""Compare a model's predicted counters with a bundle's observed stats deltas.

Predicted totals for a whole capture = the model's counters over every reclaimed large folio
+ genuine partial unmaps (``split_deferred`` once per folio cut, ``thp_split_pmd`` and
``thp_deferred_split_page`` for PMD-mapped ones, only ``thp_split_pmd`` for a PMD-mapped folio
a splitting madvise froze: ``deferred_split`` in its row; the same on every kernel) + order-0 pages
reclaim discarded (``pglazyfreed``) or swapped out (``pswpout``). A counter matches when the
observed delta lies in [low, high]; it is ``exact`` when low == high.

The THP and vmstat counters are system-wide: other processes move them too. Where a counter
does not match, the stats show how much activity outside the trace there was (large anon folios
the capture did not trace: ``nr_anon`` before it plus the ``anon_fault_alloc`` it did not see;
lazyfree pages it did not see marked: ``pglazyfree``); when that activity can account for the
difference the row's ``verdict`` is ``explained`` and ``explained_by`` says with what,
otherwise ``mismatch``. ``match`` keeps its strict meaning. Counters of the capture's own memory
cgroup (``memcg`` scope, from its memory.stat) hold only the traced command's memory: they are
never explained away.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from folio_replay.replay.predict import COUNTERS, PER_SIZE_COUNTERS, BoundsTable
from folio_replay.replay.reconstruct import Reconstruction
from folio_replay.replay.reconstruct.unmaps import NO_SWAP_SPLIT

__all__ = ["VALIDATION_COLUMNS", "Facts", "attribution", "validate"]

VALIDATION_COLUMNS = [
    "check",
    "scope",
    "counter",
    "size_kb",
    "model",
    "arch",
    "observed",
    "predicted_low",
    "predicted_high",
    "match",
    "verdict",
    "explained_by",
    "exact",
    "reclaim_low",
    "reclaim_high",
    "partial_low",
    "partial_high",
]
PMD_KB = 2048
# memory.stat keys (cgroup v2) the models predict; v1 memory.stat has none of them
MEMCG_COUNTERS = ("pglazyfreed", "thp_swpout", "pswpout")


def _observed(deltas: pd.DataFrame) -> dict[tuple[str, str, int], int]:
    """``{(scope, counter, size_kb): delta}`` for the counters the models predict."""
    wanted = deltas[
        ((deltas["source"] == "mthp") & deltas["counter"].isin(PER_SIZE_COUNTERS))
        | ((deltas["source"] == "vmstat") & deltas["counter"].isin(COUNTERS))
        | ((deltas["source"] == "memcg") & deltas["counter"].isin(MEMCG_COUNTERS))
    ]
    wanted = wanted[wanted["delta"].notna()]
    return {
        ("memcg" if row.source == "memcg" else "system", row.counter, int(row.size_kb)): int(
            row.delta
        )
        for row in wanted.itertuples(index=False)
    }


@dataclass
class Facts:
    """What validation needs of a reconstruction beyond the model's bounds: the parts that
    do not depend on the model, summed over a whole trace (or its segments: ``+``)."""

    small_discards: int = 0  # order-0 lazyfree pages discarded
    small_swapped: int = 0  # order-0 pages swapped out
    partial: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(
            {
                "size_kb": [],
                "pmd_mapped": [],
                "deferred_split": [],
                "partial_low": [],
                "partial_high": [],
            }
        )
    )
    traced_allocs: Counter = field(default_factory=Counter)  # anon folios mapped, by size
    lazyfree_pages: int = 0  # pages in the traced MADV_FREE ranges
    folio_counts: Counter = field(default_factory=Counter)  # reclaimed, by (kind, size_kb)
    # folios reclaim unmapped whose unmap the trace's rss steps did not account for, by size
    unaccounted: Counter = field(default_factory=Counter)

    @classmethod
    def of(cls, recon: Reconstruction, new_folios: pd.DataFrame | None = None) -> Facts:
        """The facts of one reconstruction (``new_folios``: the ledger rows it allocated,
        default all of them)."""
        ledger = recon.ledger if new_folios is None else new_folios
        anon = ledger[(ledger["file_seq"] < 0).to_numpy() & _mapped(recon, ledger)]
        folios = recon.folios
        unknown = folios[
            (folios["captured_unmap"] == "unknown").to_numpy()
            & ~folios["outcome"].isin(["kept", NO_SWAP_SPLIT]).to_numpy()
        ]
        return cls(
            recon.small_discards,
            recon.small_swapped,
            recon.partial[
                ["size_kb", "pmd_mapped", "deferred_split", "partial_low", "partial_high"]
            ],
            Counter(anon["size_kb"].value_counts().to_dict()),
            int((recon.lazyfree["range_len"].fillna(0) // 4096).sum())
            if len(recon.lazyfree)
            else 0,
            Counter(
                {
                    (str(k), int(s)): int(n)
                    for (k, s), n in folios.groupby(["kind", "size_kb"], observed=True)
                    .size()
                    .items()
                }
            ),
            Counter(unknown["size_kb"].value_counts().to_dict()),
        )

    def __add__(self, other: Facts) -> Facts:
        return Facts(
            self.small_discards + other.small_discards,
            self.small_swapped + other.small_swapped,
            pd.concat([self.partial, other.partial], ignore_index=True),
            self.traced_allocs + other.traced_allocs,
            self.lazyfree_pages + other.lazyfree_pages,
            self.folio_counts + other.folio_counts,
            self.unaccounted + other.unaccounted,
        )


def _mapped(recon: Reconstruction, ledger: pd.DataFrame) -> np.ndarray:
    """Which ``ledger`` folios were mapped, as ``anon_fault_alloc`` counts them: not a folio
    freed whole without an LRU insertion in a trace that records LRU insertions. A fault's
    folio whose memcg charge failed is put back at once, counted in
    ``anon_fault_fallback_charge`` and not in ``anon_fault_alloc`` (``alloc_anon_folio()`` and
    ``vma_alloc_anon_folio_pmd()``, mm/memory.c and mm/huge_memory.c, 6.12 and 6.18), and so is
    one whose page table changed under the fault; a mapped folio is added to the LRU
    (``folio_add_lru_vma()``) before it can be freed."""
    if not recon.events.has("mm_lru_insertion"):
        return np.ones(len(ledger), dtype=bool)
    unmapped = (ledger["end"] == "freed").to_numpy() & (ledger["lru_seq"] < 0).to_numpy()
    return ~unmapped


def _partial(facts: Facts, counter: str, size_kb: int) -> tuple[int, int]:
    """What genuine partial unmaps add to ``counter`` (low, high)."""
    partial = facts.partial
    queued = partial["deferred_split"].astype(bool)
    if counter == "split_deferred":
        rows = partial[(partial["size_kb"] == size_kb) & queued]
    elif counter == "thp_deferred_split_page":
        rows = partial[partial["pmd_mapped"].astype(bool) & queued]
    elif counter == "thp_split_pmd":
        rows = partial[partial["pmd_mapped"].astype(bool)]
    else:
        return 0, 0
    return int(rows["partial_low"].sum()), int(rows["partial_high"].sum())


def _stat(
    deltas: pd.DataFrame, source: str, counter: str, size_kb: int, column: str = "delta"
) -> int | None:
    """One value of the stats table (None when the bundle lacks it)."""
    rows = deltas[
        (deltas["source"] == source)
        & (deltas["counter"] == counter)
        & (deltas["size_kb"] == size_kb)
    ]
    if rows.empty or pd.isna(rows[column].iloc[0]):
        return None
    return int(rows[column].iloc[0])


def _collapsed(deltas: pd.DataFrame, size_kb: int) -> tuple[int, str]:
    """Large anon folios of ``size_kb`` that khugepaged or MADV_COLLAPSE allocated during the
    capture, and the counter that says so: the per-size ``collapse_alloc`` where the kernel
    has it (7.x), else, for PMD THPs, vmstat's ``thp_collapse_alloc`` (mm/khugepaged.c
    ``alloc_charge_folio()``)."""
    per_size = _stat(deltas, "mthp", "collapse_alloc", size_kb)
    if per_size is not None:
        return per_size, "collapse_alloc"
    if size_kb != PMD_KB:
        return 0, ""
    return _stat(deltas, "vmstat", "thp_collapse_alloc", 0) or 0, "thp_collapse_alloc"


def _untraced_folios(facts: Facts, deltas: pd.DataFrame, size_kb: int) -> tuple[int, str] | None:
    """Large anon folios of ``size_kb`` the trace did not follow that could have moved a
    counter: those alive before the capture (``nr_anon`` before) plus those allocated during it
    that the trace did not see: faulted (``anon_fault_alloc``), swapped in whole (``swpin``: a
    large folio read from swap is a new allocation, 6.10+ with a SWP_SYNCHRONOUS_IO device such
    as zram; alloc_swap_folio() in mm/memory.c, counted by swap_read_folio()) and collapsed
    (:func:`_collapsed`), less the traced allocations."""
    existing = _stat(deltas, "mthp", "nr_anon", size_kb, "before")
    faulted = _stat(deltas, "mthp", "anon_fault_alloc", size_kb)
    swapped_in = _stat(deltas, "mthp", "swpin", size_kb) or 0
    collapsed, collapse_counter = _collapsed(deltas, size_kb)
    if existing is None and faulted is None:
        return None
    traced = facts.traced_allocs[size_kb]
    unseen = max(0, (faulted or 0) + swapped_in + collapsed - traced)
    also = "".join(
        f" and {count} {how}"
        for count, how in (
            (swapped_in, "swapped in whole (swpin)"),
            (collapsed, f"collapsed ({collapse_counter})"),
        )
        if count
    )
    return (existing or 0) + unseen, (
        f"{existing or 0} anon {size_kb} kB folios existed before the capture (nr_anon), "
        f"{faulted or 0} were faulted during it (anon_fault_alloc){also} of which {traced} "
        "traced (mapped: not those freed at once without an LRU insertion, whose charge failed)"
    )


def _split_folio_kb(counter: str, size_kb: int) -> int | None:
    """The size of the folios a split counter counts (None: not a split counter)."""
    if counter == "split_deferred":
        return size_kb
    if counter in ("thp_split_pmd", "thp_deferred_split_page"):
        return PMD_KB
    return None


def _allowance(
    facts: Facts, deltas: pd.DataFrame, counter: str, size_kb: int
) -> tuple[int, str] | None:
    """How much activity outside the trace could add to a system-wide counter, and why."""
    folio_kb = _split_folio_kb(counter, size_kb)
    if folio_kb is not None:
        return _untraced_folios(facts, deltas, folio_kb)
    if counter == "pglazyfreed":
        marked = _stat(deltas, "vmstat", "pglazyfree", 0)
        if marked is None:
            return None
        traced = facts.lazyfree_pages
        return max(0, marked - traced), (
            f"pglazyfree +{marked} pages marked lazyfree, the traced MADV_FREE ranges hold "
            f"{traced} (lazyfree pages from before the capture are not counted)"
        )
    return None


def _unaccounted(facts: Facts, counter: str, size_kb: int) -> str:
    """Why a shortfall of ``counter`` is not put down to activity outside the trace: the
    capture's own reclaim unmapped folios of that size in ways the reconstruction did not
    account for, which may be where the difference is ("" when it did not)."""
    size = _split_folio_kb(counter, size_kb)
    if size is None:
        return ""
    count = facts.unaccounted[size]
    if not count:
        return ""
    return (
        f"not put down to activity outside the trace: the capture's own reclaim unmapped "
        f"{count} {size} kB folios in ways the trace's rss_stat steps do not account for "
        "(captured_unmap unknown)"
    )


def _predicted(
    bounds: BoundsTable, model: str, arch: str, scale: dict[tuple[str, int], float] | None = None
) -> dict[tuple[str, int], list[int]]:
    """The model's reclaim counters per (counter, size_kb key), low and high; ``scale``
    multiplies the folios of each (kind, folio size) (each row rounded outwards)."""
    frame = bounds.frame
    rows = frame[(frame["model"] == model) & (frame["arch"] == arch)] if len(frame) else frame
    if rows.empty:
        return {}
    sizes = rows["size_kb"].to_numpy(np.int64)
    factor = (
        np.ones(len(rows))
        if scale is None
        else np.array([scale.get(key, 0.0) for key in zip(rows["kind"].tolist(), sizes.tolist())])
    )
    predicted: dict[tuple[str, int], list[int]] = {}
    for counter in COUNTERS:
        low = np.floor(rows[f"{counter}_low"].to_numpy() * factor)
        high = np.ceil(rows[f"{counter}_high"].to_numpy() * factor)
        key = sizes if counter in PER_SIZE_COUNTERS else np.zeros_like(sizes)
        for size in np.unique(key).tolist():
            mine = key == size
            predicted[counter, size] = [int(low[mine].sum()), int(high[mine].sum())]
    return predicted


def validate(
    facts: Facts,
    bounds: BoundsTable,
    deltas: pd.DataFrame,
    model: str,
    arch: str,
    check: str,
    target: Facts | None = None,
) -> pd.DataFrame:
    """One row per observed counter: the observed delta against the model's bounds.

    ``bounds`` comes from :func:`folio_replay.replay.predict.replay_folios` over the folios
    of the reconstruction ``facts`` describes; the counters do not depend on the
    architecture, ``arch`` only picks which priced copy to read. For a cross-kernel check,
    ``target`` describes the capture whose counters ``deltas`` are: what does not depend on
    the model (order-0 pages, genuine partial unmaps) is taken from it, and where reclaim met
    a different number of folios of a kind and size there (memcg, kswapd and direct reclaim
    take as many as they need, and kernels differ in which) this capture's predictions are
    scaled to its count, the bounds rounded outwards.
    """
    scale, note = None, ""
    if target is not None:
        own, theirs = facts.folio_counts, target.folio_counts
        if own != theirs:
            scale = {key: theirs.get(key, 0) / n for key, n in own.items()}
            note = "predictions scaled to the other capture's folios: " + ", ".join(
                f"{kind} {size}K {own.get((kind, size), 0)}→{theirs.get((kind, size), 0)}"
                for kind, size in sorted(set(own) | set(theirs))
            )
    predicted = _predicted(bounds, model, arch, scale)
    facts = target if target is not None else facts
    rows = []
    for (scope, counter, size_kb), observed in sorted(_observed(deltas).items()):
        reclaim_low, reclaim_high = predicted.get((counter, size_kb), [0, 0])
        small = {"pglazyfreed": facts.small_discards, "pswpout": facts.small_swapped}
        reclaim_low += small.get(counter, 0)
        reclaim_high += small.get(counter, 0)
        if counter == "pswpout":
            # zero-filled pages are not written: swpout_zero instead (mm/page_io.c
            # swap_writepage(), 6.12 and 7.x)
            zero = _stat(deltas, "vmstat", "swpout_zero", 0) or 0
            reclaim_low = max(0, reclaim_low - zero)
        partial_low, partial_high = _partial(facts, counter, size_kb)
        low, high = reclaim_low + partial_low, reclaim_high + partial_high
        match = low <= observed <= high
        verdict, why = ("match" if match else "mismatch"), note
        if not match and scope == "system" and observed > high:
            allowance = _allowance(facts, deltas, counter, size_kb)
            unaccounted = _unaccounted(facts, counter, size_kb)
            if unaccounted:
                why = unaccounted
            elif allowance is not None and observed <= high + allowance[0]:
                verdict = "explained"
                why = f"activity outside the trace: {allowance[1]}: up to +{allowance[0]}"
            elif allowance is not None:
                why = f"more than activity outside the trace allows: {allowance[1]}"
        rows.append(
            {
                "check": check,
                "scope": scope,
                "counter": counter,
                "size_kb": size_kb,
                "model": model,
                "arch": arch,
                "observed": observed,
                "predicted_low": low,
                "predicted_high": high,
                "match": match,
                "verdict": verdict,
                "explained_by": why,
                "exact": low == high,
                "reclaim_low": reclaim_low,
                "reclaim_high": reclaim_high,
                "partial_low": partial_low,
                "partial_high": partial_high,
            }
        )
    return pd.DataFrame(rows, columns=VALIDATION_COLUMNS)


def attribution(validation: pd.DataFrame) -> pd.DataFrame:
    """Observed ``split_deferred`` per size split into lazyfree reclaim and genuine partial
    unmaps."""
    rows = validation[(validation["counter"] == "split_deferred") & (validation["observed"] > 0)]
    return rows[
        [
            "model",
            "size_kb",
            "observed",
            "reclaim_low",
            "reclaim_high",
            "partial_low",
            "partial_high",
        ]
    ].reset_index(drop=True)
