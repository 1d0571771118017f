"""Compare a model's predicted counters with a bundle's observed stats deltas.

Predicted totals for a whole capture = the model's counters over every reclaimed large folio
+ genuine partial unmaps (``split_deferred`` once per folio cut, ``thp_split_pmd`` and
``thp_deferred_split_page`` for PMD-mapped ones; the same on every kernel) + order-0 lazyfree
pages discarded by reclaim (``pglazyfreed``). A counter matches when the observed delta lies in
[low, high]; it is ``exact`` when low == high.
"""

from __future__ import annotations

import pandas as pd
from folio_replay.replay.predict import COUNTERS
from folio_replay.replay.reconstruct import Reconstruction

VALIDATION_COLUMNS = [
    "check",
    "counter",
    "size_kb",
    "model",
    "arch",
    "observed",
    "predicted_low",
    "predicted_high",
    "match",
    "exact",
    "reclaim_low",
    "reclaim_high",
    "partial_low",
    "partial_high",
]


def _observed(deltas: pd.DataFrame) -> dict[tuple[str, int], int]:
    """``{(counter, size_kb): delta}`` for the counters the models predict."""
    wanted = deltas[
        ((deltas["source"] == "mthp") & (deltas["counter"] == "split_deferred"))
        | ((deltas["source"] == "vmstat") & deltas["counter"].isin(COUNTERS))
    ]
    return {
        (row.counter, int(row.size_kb)): int(row.delta) for row in wanted.itertuples(index=False)
    }


def _partial(recon: Reconstruction, counter: str, size_kb: int) -> tuple[int, int]:
    """What genuine partial unmaps add to ``counter`` (low, high)."""
    partial = recon.partial
    if counter == "split_deferred":
        rows = partial[partial["size_kb"] == size_kb]
    elif counter in ("thp_split_pmd", "thp_deferred_split_page"):
        rows = partial[partial["pmd_mapped"].astype(bool)]
    else:
        return 0, 0
    return int(rows["partial_low"].sum()), int(rows["partial_high"].sum())


def validate(
    recon: Reconstruction, bounds: dict, deltas: pd.DataFrame, model: str, arch: str, check: str
) -> pd.DataFrame:
    """One row per observed counter: the observed delta against the model's bounds.

    ``bounds`` comes from :func:`folio_replay.replay.predict.replay_folios` over ``recon``'s
    folios; the
    counters do not depend on the architecture, ``arch`` only picks which priced copy to read.
    """
    per_size: dict[tuple[str, int], list[int]] = {}
    for (m, a, _episode, size_kb), b in bounds.items():
        if (m, a) != (model, arch):
            continue
        for counter in COUNTERS:
            key = (counter, size_kb if counter == "split_deferred" else 0)
            low_high = per_size.setdefault(key, [0, 0])
            low_high[0] += b.low[counter]
            low_high[1] += b.high[counter]
    rows = []
    for (counter, size_kb), observed in sorted(_observed(deltas).items()):
        reclaim_low, reclaim_high = per_size.get((counter, size_kb), [0, 0])
        if counter == "pglazyfreed":
            reclaim_low += recon.small_discards
            reclaim_high += recon.small_discards
        partial_low, partial_high = _partial(recon, counter, size_kb)
        low, high = reclaim_low + partial_low, reclaim_high + partial_high
        rows.append(
            {
                "check": check,
                "counter": counter,
                "size_kb": size_kb,
                "model": model,
                "arch": arch,
                "observed": observed,
                "predicted_low": low,
                "predicted_high": high,
                "match": low <= observed <= high,
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
