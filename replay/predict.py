"""Replay each reclaimed folio through the unmap models and price it per architecture.

Folios of the same *shape* (episode, owner, kind, size, PMD mapping, dirty page, whether it was
zapped later, where its mm was loaded, where its runs of other PTE write bits start) behave
identically in every model, so each shape is replayed once and its result multiplied by the
number of folios. A folio whose dirty page the
trace leaves open (``UNKNOWN_DIRTY_PAGE``) is replayed once per possible dirty page
(:func:`folio_replay.replay.folio.expand_unknown`), an ``undecided`` anonymous folio once as
lazyfree and once as swap-backed; the possibilities give low and high bounds (the folios are
independent, so the sum of the lows is the low of the sum).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from folio_replay.replay.costs.tables import CostTable, load_table
from folio_replay.replay.folio import UNKNOWN_DIRTY_PAGE, FolioState, UnmapResult, expand_unknown
from folio_replay.replay.models import MODELS, unmap
from folio_replay.replay.reconstruct.flush_cpus import NONE, REMOTE
from folio_replay.replay.reconstruct.unmaps import NO_SWAP_SPLIT

__all__ = [
    "COUNTERS",
    "PER_SIZE_COUNTERS",
    "PREDICTION_COLUMNS",
    "SHAPE_COLUMNS",
    "STATE_COLUMNS",
    "Bounds",
    "call_shares",
    "folio_states",
    "load_tables",
    "merge_bounds",
    "predictions_frame",
    "replay_folios",
    "shapes",
    "state_key",
]

# Counters the models move, by their stats names: split_deferred and swpout per mTHP size
# (hugepages-<N>kB/stats/), the rest in /proc/vmstat.
COUNTERS = (
    "split_deferred",
    "thp_split_pmd",
    "thp_deferred_split_page",
    "pglazyfreed",
    "swpout",
    "swpout_fallback",
    "thp_swpout",
    "thp_swpout_fallback",
    "pswpout",
)
PER_SIZE_COUNTERS = ("split_deferred", "swpout", "swpout_fallback")
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
# Outcomes of a swap-backed folio reclaim split for want of a swap slot for the whole of it:
# its pages swapped out one by one, or kept when there is no swap device at all
SPLIT_OUTCOMES = ("split", NO_SWAP_SPLIT)
# What the trace leaves open about a folio's kind: an undecided anonymous folio is one of these.
KIND_POSSIBILITIES = {"undecided": ("lazyfree", "swapbacked")}
SHAPE_COLUMNS = [
    "episode",
    "pid",
    "kind",
    "nr_pages",
    "size_kb",
    "pmd_mapped",
    "dirty_page",
    "outcome",
    "zapped_later",
    "mm_cpus",
    "write_run_starts",
    "batch_starts",
]


# the columns of a shape that decide its states (folio_states()): not its episode or owner
STATE_COLUMNS = [column for column in SHAPE_COLUMNS if column not in ("episode", "pid")]
_NAN = float("nan")  # every NaN of a shape as one object, so that equal shapes are equal keys


def state_key(shape: dict) -> tuple:
    """The values of a shape's :data:`STATE_COLUMNS`, usable as a dict key."""
    return tuple(
        _NAN if isinstance(value, float) and value != value else value
        for value in (shape.get(column) for column in STATE_COLUMNS)
    )


def folio_states(folio: dict, arch: str) -> list[FolioState]:
    """The possibilities the trace leaves for one folio record (or shape) on ``arch``."""
    dirty = folio["dirty_page"]
    dirty = None if dirty is None or pd.isna(dirty) else int(dirty)
    nr_pages = int(folio["nr_pages"])
    kind = folio.get("kind", "lazyfree")
    pmd = folio["pmd_mapped"]
    state = FolioState(
        nr_pages=nr_pages,
        dirty_page=dirty if kind in ("lazyfree", "undecided") else None,
        contpte=arch == "arm64" and nr_pages % CONTPTE_PAGES == 0,
        swap_fallback=kind == "swapbacked" and folio.get("outcome") in SPLIT_OUTCOMES,
        no_swap=kind == "swapbacked" and folio.get("outcome") == NO_SWAP_SPLIT,
        # where the trace shows the mm loaded (x86 tlb_flush; null elsewhere: this CPU only)
        remote_cpus=int(folio.get("mm_cpus") == REMOTE),
        mm_loaded=folio.get("mm_cpus") != NONE,
        run_starts=_run_starts(folio.get("write_run_starts")),
    )
    return [
        expanded
        for each in KIND_POSSIBILITIES.get(kind, (kind,))
        for mapped in ((True, False) if pd.isna(pmd) else (bool(pmd),))
        for cut in _cuts(state, folio)
        # a write fault on a PMD mapping reuses the whole PMD or splits it first: no runs
        for expanded in expand_unknown(
            replace(cut, kind=each, pmd_mapped=mapped, run_starts=() if mapped else cut.run_starts)
        )
    ]


def _cuts(state: FolioState, folio: dict) -> list[FolioState]:
    """Where the captured kernel unmapped the folio in several batches (``batch_starts``: the
    pages at which the later ones started), what ended the first: a page-table or VMA end (the
    cut every 6.16+ batch keeps; the later starts are then runs of other write bits), or, where the
    trace cannot show write-protect faults (``write_run_starts`` null: arm64, riscv, page-cache and
    shmem folios), possibly a run of other write bits too (only the models that respect them stop
    there). A kept folio's unknown dirty page is then one of the pages after the first cut."""
    starts = _run_starts(folio.get("batch_starts"))
    if not starts:
        return [state]
    first, later = starts[0], starts[1:]
    cuts = [
        replace(state, batch_limit=first, run_starts=tuple(sorted({*state.run_starts, *later})))
    ]
    if folio.get("write_run_starts") is None or pd.isna(folio.get("write_run_starts")):
        cuts.append(replace(state, run_starts=starts))
    if state.dirty_page != UNKNOWN_DIRTY_PAGE:
        return cuts
    # kept after its first batch was unmapped: redirtied at or after its first cut
    pages = range(first, state.nr_pages)
    return [replace(cut, dirty_page=page) for cut in cuts for page in pages]


def _run_starts(text: object) -> tuple[int, ...]:
    """A record's ``write_run_starts`` or ``batch_starts`` ("1,2") as page numbers; none when
    empty or null."""
    if text is None or pd.isna(text) or not text:
        return ()
    return tuple(int(page) for page in str(text).split(","))


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

    @classmethod
    def of_shape(
        cls,
        results: list[UnmapResult],
        prices: list[tuple[float, float]],
        primitives: list[Counter],
        zapped: bool | None,
    ) -> Bounds:
        """One folio of one shape: its possible results, their (untraced, traced) prices,
        their primitive op counts on the arch, and whether it was zapped later (None: unknown,
        either)."""
        unit = cls(folios=1)
        names = set().union(
            *(r.counters for r in results), *(r.zap_counters for r in results), ("flushes",)
        )
        zaps = (False, True) if zapped is None else (zapped,)
        for name in names:
            values = [
                len(r.flushes)
                if name == "flushes"
                else r.counters[name] + (r.zap_counters[name] if zap else 0)
                for r in results
                for zap in zaps
            ]
            unit.low[name] = min(values)
            unit.high[name] = max(values)
        plain = [price for price, _ in prices]
        traced = [price for _, price in prices]
        unit.primitives.update(primitives[plain.index(min(plain))])
        unit.time_low, unit.time_high = min(plain), max(plain)
        unit.traced_low, unit.traced_high = min(traced), max(traced)
        return unit

    def add(self, unit: Bounds, count: int = 1) -> None:
        """Add ``count`` times the folios of ``unit``."""
        self.folios += count * unit.folios
        for mine, theirs in (
            (self.low, unit.low),
            (self.high, unit.high),
            (self.primitives, unit.primitives),
        ):
            for name, value in theirs.items():
                mine[name] += count * value
        self.time_low += count * unit.time_low
        self.time_high += count * unit.time_high
        self.traced_low += count * unit.traced_low
        self.traced_high += count * unit.traced_high


def merge_bounds(into: dict[tuple, Bounds], more: dict[tuple, Bounds]) -> None:
    """Add the bounds ``more`` (another set of folios, e.g. a later segment) to ``into``
    (``more``'s bounds of keys new to ``into`` become ``into``'s)."""
    for key, bounds in more.items():
        mine = into.get(key)
        if mine is None:
            into[key] = bounds  # ``more`` is not used again: its bounds are taken over
            continue
        mine.add(bounds)


def load_tables(archs: list[str], costs: str | None) -> dict[str, CostTable]:
    """The cost table per architecture: the shipped table of each arch, except that a user's
    table ``costs`` (a TOML path) replaces the one of its own arch."""
    custom = load_table(costs) if costs else None
    return {
        arch: custom if custom is not None and custom.arch == arch else load_table(arch)
        for arch in archs
    }


def shapes(folios: pd.DataFrame) -> pd.DataFrame:
    """The distinct folio shapes of ``folios`` with their counts (``folios`` column)."""
    if folios.empty:
        return pd.DataFrame(columns=[*SHAPE_COLUMNS, "folios"])
    frame = folios[SHAPE_COLUMNS].copy()
    # only a kept folio's later zap counts; null: unknown (a kept folio the trace does not name)
    kept = (frame["outcome"] == "kept").to_numpy()
    frame["zapped_later"] = frame["zapped_later"].astype("boolean").where(kept, False)
    # one code per distinct row (a missing value is a value of its own): the columns' codes in
    # mixed radix, renumbered densely (order kept) only when the next column could overflow
    key = np.zeros(len(frame), dtype=np.int64)
    span = 1  # key < span
    for column in SHAPE_COLUMNS:
        codes, uniques = pd.factorize(frame[column], use_na_sentinel=False)
        radix = len(uniques) + 1
        if span * radix >= 1 << 62:
            key = np.unique(key, return_inverse=True)[1].ravel()
            span = int(key.max()) + 1
        key = key * radix + codes
        span *= radix
    _, first, counts = np.unique(key, return_index=True, return_counts=True)
    counted = frame.iloc[first].reset_index(drop=True)
    counted["folios"] = counts
    return counted.sort_values(SHAPE_COLUMNS, kind="stable").reset_index(drop=True)


def replay_folios(
    folios: pd.DataFrame, models: list[str], tables: dict[str, CostTable]
) -> dict[tuple, Bounds]:
    """``{(model, arch, episode, pid, kind, size_kb): Bounds}`` for every folio record."""
    bounds: dict[tuple, Bounds] = {}
    priced: dict[tuple, tuple[tuple[float, float], Counter]] = {}
    # shapes that differ only in episode or owner replay alike: each state key once per arch
    replayed: dict[tuple, Bounds] = {}
    for shape in shapes(folios).to_dict("records"):
        behaviour = state_key(shape)
        for arch, table in tables.items():
            states = None
            for model in models:
                once = replayed.get((behaviour, arch, model))
                if once is None:
                    if states is None:
                        states = folio_states(shape, arch)
                    results = [unmap(model, state) for state in states]
                    prices, primitives = [], []
                    for state, result in zip(states, results):
                        cached = (arch, model, state)
                        if cached not in priced:
                            priced[cached] = (
                                (table.price(result), table.price(result, traced=True)),
                                table.primitive_counts(result),
                            )
                        prices.append(priced[cached][0])
                        primitives.append(priced[cached][1])
                    zapped = shape["zapped_later"]
                    once = replayed[behaviour, arch, model] = Bounds.of_shape(
                        results, prices, primitives, None if pd.isna(zapped) else bool(zapped)
                    )
                key = (
                    model,
                    arch,
                    int(shape["episode"]),
                    int(shape["pid"]),
                    shape["kind"],
                    int(shape["size_kb"]),
                )
                totals = bounds.get(key)
                if totals is None:
                    totals = bounds[key] = Bounds()
                totals.add(once, int(shape["folios"]))
    return bounds


PREDICTION_COLUMNS = [
    "model",
    "hypothetical",
    "arch",
    "episode",
    "pid",
    "kind",
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


def call_shares(bounds: dict[tuple, Bounds], calls: Collection[int]) -> dict[tuple, float]:
    """Each bounds key's share of its episode's calls, for the episodes in ``calls`` (those
    that make calls a table prices): its folios over the episode's folios under the same
    model and arch, so that the shares of one episode's rows add up to one."""
    totals: Counter = Counter()
    for (model, arch, episode, *_), b in bounds.items():
        if episode in calls:
            totals[model, arch, episode] += b.folios
    return {
        key: b.folios / totals[key[:3]]
        for key, b in bounds.items()
        if key[2] in calls and totals[key[:3]]
    }


def predictions_frame(
    bounds: dict[tuple, Bounds],
    tables: dict[str, CostTable],
    calls: Mapping[int, Mapping[str, int]],
) -> pd.DataFrame:
    """The ``predictions`` report table (one row per model, arch, episode, owner, kind and
    folio size). ``calls``: the calls each episode makes beyond its folios
    (:func:`folio_replay.replay.timing.reclaim_calls`: ``{episode: {op: calls}}``); each row
    of such an episode also carries its share of their cost (the arch's table, shared by the
    episode's folios: :func:`call_shares`), the same in every model."""
    shares = call_shares(bounds, calls.keys())
    columns: dict[str, list] = {name: [] for name in PREDICTION_COLUMNS}
    texts: dict[tuple, str] = {}  # the primitives column's text of each distinct set
    for key, b in sorted(bounds.items()):
        model, arch, episode, pid, kind, size_kb = key
        share = shares.get(key, 0.0)
        made = calls.get(episode, {}) if share else {}
        call_ns = sum(share * n * tables[arch].call_ns(op) for op, n in made.items())
        primitives: dict[str, float] = dict(b.primitives)
        for op, n in made.items():
            primitives[op] = share * n
        for name, value in (
            ("model", model),
            ("hypothetical", MODELS[model].hypothetical),
            ("arch", arch),
            ("episode", episode),
            ("pid", pid),
            ("kind", kind),
            ("size_kb", size_kb),
            ("folios", b.folios),
        ):
            columns[name].append(value)
        for name in (*COUNTERS, "flushes"):
            columns[f"{name}_low"].append(int(b.low.get(name, 0)))
            columns[f"{name}_high"].append(int(b.high.get(name, 0)))
        columns["tlb_invalidations"].append(
            int(sum(b.primitives.get(op, 0) for op in INVALIDATIONS))
        )
        columns["cross_cpu_requests"].append(int(sum(b.primitives.get(op, 0) for op in CROSS_CPU)))
        columns["time_ns_low"].append(b.time_low + call_ns)
        columns["time_ns_high"].append(b.time_high + call_ns)
        columns["time_ns"].append((b.time_low + b.time_high) / 2 + call_ns)
        columns["traced_time_ns"].append((b.traced_low + b.traced_high) / 2 + call_ns)
        items = tuple(sorted(primitives.items()))
        text = texts.get(items)
        if text is None:
            text = texts[items] = ",".join(f"{op}={n:g}" for op, n in items)
        columns["primitives"].append(text)
    if not columns["model"]:
        return pd.DataFrame(columns=PREDICTION_COLUMNS)
    return pd.DataFrame(columns, columns=PREDICTION_COLUMNS).astype({"hypothetical": bool})
