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
    "BoundsTable",
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
KEY_COLUMNS = ["model", "arch", "episode", "pid", "kind", "size_kb"]  # of BoundsTable rows
BOUND_COUNTERS = (*COUNTERS, "flushes")
TIME_COLUMNS = ("time_low", "time_high", "traced_low", "traced_high")
PRIMITIVE_PREFIX = "primitive:"
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
    """Low/high of what a model does to one folio of one shape on one architecture.

    Counters include the ``zap_counters`` of kept folios the trace shows zapped later (a folio
    still mapped when the trace and the stats snapshot end has not moved them). ``time`` is the
    untraced price, ``traced`` adds the tracepoint records a capture pays for.
    """

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
        unit = cls()
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


class BoundsTable:
    """The bounds of a set of folios summed per (model, arch, episode, owner, kind, folio
    size): one row per key (``frame``: :data:`KEY_COLUMNS`, ``folios``, the low and high of
    every counter of :data:`BOUND_COUNTERS` as ``<counter>_low`` / ``_high``, the untraced and
    traced time bounds of :data:`TIME_COLUMNS`, and the primitive op counts of the cheapest
    variants as ``<PRIMITIVE_PREFIX><op>``). Made of parts (tables of other folios, added by
    :func:`merge_bounds`; rows of the same key in any of them): they are kept apart until
    ``frame`` is asked for, then summed once, key by key in the order they were added."""

    def __init__(self, *parts: pd.DataFrame, summed: bool = False) -> None:
        self._parts = [part for part in parts if len(part)]
        self._summed = summed and len(self._parts) <= 1  # one part of distinct keys

    @property
    def frame(self) -> pd.DataFrame:
        """One row per key."""
        if not self._parts:
            return pd.DataFrame(columns=KEY_COLUMNS)
        if not self._summed:
            self._parts = [_summed(pd.concat(self._parts, ignore_index=True))]
            self._summed = True
        return self._parts[0]

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def ops(self) -> list[str]:
        """The primitive ops of the rows, sorted."""
        cut = len(PRIMITIVE_PREFIX)
        return sorted(c[cut:] for c in self.frame.columns if c.startswith(PRIMITIVE_PREFIX))

    def primitive(self, op: str) -> np.ndarray:
        """Per row, the count of primitive ``op`` (0 where none)."""
        column = PRIMITIVE_PREFIX + op
        if column not in self.frame:
            return np.zeros(len(self.frame))
        return self.frame[column].to_numpy(np.float64)

    def has(self, model: str, arch: str) -> bool:
        """Whether any row is of ``model`` on ``arch``."""
        frame = self.frame
        return bool(((frame["model"] == model) & (frame["arch"] == arch)).any())


def _summed(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with equal keys summed, each key's rows added in their order (0 + a + b ...,
    as one folio's bounds are added after another's), keys in order of first appearance."""
    codes = rows.groupby(KEY_COLUMNS, sort=False, dropna=False).ngroup().to_numpy()
    _, first = np.unique(codes, return_index=True)
    if len(first) == len(rows):  # each key once (a part's missing op columns: none of it)
        values = rows.columns.difference(KEY_COLUMNS, sort=False)
        return rows.fillna(dict.fromkeys(values, 0)).reset_index(drop=True)
    columns = {name: rows[name].to_numpy()[first] for name in KEY_COLUMNS}
    for name in rows.columns.difference(KEY_COLUMNS, sort=False):
        values = rows[name].fillna(0).to_numpy()
        total = np.zeros(len(first), dtype=values.dtype)
        np.add.at(total, codes, values)
        columns[name] = total
    return pd.DataFrame(columns)


def merge_bounds(into: BoundsTable, more: BoundsTable) -> BoundsTable:
    """The bounds of ``into`` and of ``more`` (another set of folios, e.g. a later segment)
    added key by key."""
    return BoundsTable(*into._parts, *more._parts)


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
) -> BoundsTable:
    """The bounds of every folio record per (model, arch, episode, pid, kind, size_kb)."""
    table = shapes(folios)
    if table.empty:
        return BoundsTable()
    records = table.to_dict("records")
    # shapes that differ only in episode or owner replay alike: each state key once per arch
    index: dict[tuple, int] = {}
    state_of = np.array([index.setdefault(state_key(r), len(index)) for r in records])
    first: dict[int, dict] = {}
    for row, state in enumerate(state_of.tolist()):
        first.setdefault(state, records[row])
    states = [first[i] for i in range(len(index))]
    counts = table["folios"].to_numpy(np.int64)
    owners = table[["episode", "pid", "kind", "size_kb"]].astype({"kind": object})
    codes = owners.groupby(list(owners.columns), sort=False, dropna=False).ngroup().to_numpy()
    _, first_rows = np.unique(codes, return_index=True)
    keys = owners.iloc[first_rows].reset_index(drop=True)
    units = _units(states, models, tables)
    if not units:
        return BoundsTable()
    ops = sorted(set().union(*(u.primitives for unit in units.values() for u in unit)))
    ints, floats = [], []
    for unit in units.values():
        # each state's numbers times its shapes' folio counts, added up per key in shape order
        per_state, per_state_f = _unit_rows(unit, ops)
        totals = np.zeros((len(keys), per_state.shape[1]), dtype=np.int64)
        np.add.at(totals, codes, per_state[state_of] * counts[:, None])
        ints.append(totals)
        totals_f = np.zeros((len(keys), per_state_f.shape[1]), dtype=np.float64)
        np.add.at(totals_f, codes, per_state_f[state_of] * counts[:, None])
        floats.append(totals_f)
    int_totals, float_totals = np.concatenate(ints), np.concatenate(floats)
    combos = len(units)
    columns: dict[str, object] = {
        "model": np.repeat([model for _, model in units], len(keys)).astype(object),
        "arch": np.repeat([arch for arch, _ in units], len(keys)).astype(object),
        **{name: np.tile(keys[name].to_numpy(), combos) for name in keys.columns},
        "folios": int_totals[:, 0],
    }
    for i, counter in enumerate(BOUND_COUNTERS):
        columns[f"{counter}_low"] = int_totals[:, 1 + i]
        columns[f"{counter}_high"] = int_totals[:, 1 + len(BOUND_COUNTERS) + i]
    for i, column in enumerate(TIME_COLUMNS):
        columns[column] = float_totals[:, i]
    for i, op in enumerate(ops):
        columns[PRIMITIVE_PREFIX + op] = float_totals[:, len(TIME_COLUMNS) + i]
    return BoundsTable(pd.DataFrame(columns)[[*KEY_COLUMNS, *list(columns)[6:]]], summed=True)


def _unit_rows(unit: list[Bounds], ops: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The bounds of one folio of each state as rows: ints (1 folio, the lows and highs of
    :data:`BOUND_COUNTERS`) and floats (:data:`TIME_COLUMNS`, then the counts of ``ops``)."""
    ints = [
        [1, *(u.low[c] for c in BOUND_COUNTERS), *(u.high[c] for c in BOUND_COUNTERS)] for u in unit
    ]
    floats = [
        [u.time_low, u.time_high, u.traced_low, u.traced_high, *(u.primitives[op] for op in ops)]
        for u in unit
    ]
    return np.array(ints, dtype=np.int64), np.array(floats, dtype=np.float64)


def _units(
    states: list[dict], models: list[str], tables: dict[str, CostTable]
) -> dict[tuple[str, str], list[Bounds]]:
    """Per (arch, model), the bounds of one folio of each state (a shape of those
    :data:`STATE_COLUMNS`)."""
    priced: dict[tuple, tuple[tuple[float, float], Counter]] = {}
    units: dict[tuple[str, str], list[Bounds]] = {}
    for arch, table in tables.items():
        possible = [folio_states(shape, arch) for shape in states]
        for model in models:
            unit = units[arch, model] = []
            for shape, options in zip(states, possible):
                results = [unmap(model, state) for state in options]
                prices, primitives = [], []
                for state, result in zip(options, results):
                    cached = (arch, model, state)
                    if cached not in priced:
                        priced[cached] = (
                            (table.price(result), table.price(result, traced=True)),
                            table.primitive_counts(result),
                        )
                    prices.append(priced[cached][0])
                    primitives.append(priced[cached][1])
                zapped = shape["zapped_later"]
                unit.append(
                    Bounds.of_shape(
                        results, prices, primitives, None if pd.isna(zapped) else bool(zapped)
                    )
                )
    return units


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


def call_shares(bounds: BoundsTable, calls: Collection[int]) -> np.ndarray:
    """Each row's share of its episode's calls, for the episodes in ``calls`` (those that make
    calls a table prices; 0 elsewhere): its folios over the episode's folios under the same
    model and arch, so that the shares of one episode's rows add up to one."""
    frame = bounds.frame
    folios = frame["folios"].to_numpy(np.int64)
    making = frame["episode"].isin(list(calls)).to_numpy()
    totals = frame.groupby(["model", "arch", "episode"], sort=False)["folios"].transform("sum")
    totals = totals.to_numpy(np.int64)
    shares = np.zeros(len(frame))
    counted = making & (totals > 0)
    shares[counted] = folios[counted] / totals[counted]
    return shares


def predictions_frame(
    bounds: BoundsTable,
    tables: dict[str, CostTable],
    calls: Mapping[int, Mapping[str, int]],
) -> pd.DataFrame:
    """The ``predictions`` report table (one row per model, arch, episode, owner, kind and
    folio size). ``calls``: the calls each episode makes beyond its folios
    (:func:`folio_replay.replay.timing.reclaim_calls`: ``{episode: {op: calls}}``); each row
    of such an episode also carries its share of their cost (the arch's table, shared by the
    episode's folios: :func:`call_shares`), the same in every model."""
    if not len(bounds):
        return pd.DataFrame(columns=PREDICTION_COLUMNS)
    frame = bounds.frame.sort_values(KEY_COLUMNS, kind="stable").reset_index(drop=True)
    bounds = BoundsTable(frame)
    shares = call_shares(bounds, calls.keys())
    episodes = frame["episode"].to_numpy(np.int64)
    arch = frame["arch"].to_numpy(dtype=object)
    call_ns = np.zeros(len(frame))
    made: dict[str, np.ndarray] = {}  # per call op, each row's share of the calls
    for op in sorted({op for ops in calls.values() for op in ops}):
        n = np.array([calls.get(e, {}).get(op, 0) for e in episodes.tolist()], dtype=np.int64)
        share = np.where(n > 0, shares * n, 0.0)
        if not share.any():
            continue
        made[op] = share
        price = np.array([tables[a].call_ns(op) for a in arch.tolist()])
        call_ns = call_ns + share * price
    time_low, time_high = frame["time_low"].to_numpy(), frame["time_high"].to_numpy()
    traced = (frame["traced_low"].to_numpy() + frame["traced_high"].to_numpy()) / 2
    invalidations = sum((bounds.primitive(op) for op in INVALIDATIONS), np.zeros(len(frame)))
    cross_cpu = sum((bounds.primitive(op) for op in CROSS_CPU), np.zeros(len(frame)))
    columns = {
        "model": frame["model"].tolist(),
        "hypothetical": [MODELS[m].hypothetical for m in frame["model"].tolist()],
        "arch": arch.tolist(),
        "episode": episodes,
        "pid": frame["pid"].to_numpy(np.int64),
        "kind": frame["kind"].tolist(),
        "size_kb": frame["size_kb"].to_numpy(np.int64),
        "folios": frame["folios"].to_numpy(np.int64),
        **{
            f"{name}_{bound}": frame[f"{name}_{bound}"].to_numpy(np.int64)
            for name in BOUND_COUNTERS
            for bound in ("low", "high")
        },
        "tlb_invalidations": invalidations.astype(np.int64),
        "cross_cpu_requests": cross_cpu.astype(np.int64),
        "time_ns_low": time_low + call_ns,
        "time_ns_high": time_high + call_ns,
        "time_ns": (time_low + time_high) / 2 + call_ns,
        "traced_time_ns": traced + call_ns,
        "primitives": _primitive_texts(bounds, made),
    }
    return pd.DataFrame(columns, columns=PREDICTION_COLUMNS).astype({"hypothetical": bool})


def _primitive_texts(bounds: BoundsTable, made: dict[str, np.ndarray]) -> list[str]:
    """Per row, its primitive op counts and shares of calls as text (``op=n,...``, ops
    sorted), each distinct set written once."""
    ops = sorted({*bounds.ops, *made})
    counts = np.column_stack(
        [made[op] if op in made else bounds.primitive(op) for op in ops] or [np.zeros(len(bounds))]
    )
    rows = pd.DataFrame(counts)
    codes = rows.groupby(list(rows.columns), sort=False).ngroup().to_numpy()
    _, first = np.unique(codes, return_index=True)
    texts = [
        ",".join(f"{op}={n:g}" for op, n in zip(ops, row) if n) for row in counts[first].tolist()
    ]
    return [texts[i] for i in codes.tolist()]
