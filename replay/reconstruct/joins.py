"""Array joins in time order: the building blocks of reconstruction (numpy, no Python
loops over rows)."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "categorical",
    "categorical_of_codes",
    "codes",
    "equals",
    "group_runs",
    "latest_before",
    "next_in_group",
    "next_same",
    "nullable",
]


def latest_before(
    keys: np.ndarray, seqs: np.ndarray, query_keys: np.ndarray, query_seqs: np.ndarray
) -> np.ndarray:
    """For each query, the index (into ``keys``) of the latest entry with the same key and a
    smaller seq, or -1. Entries and queries are merged in (key, seq) order; when the queries
    are few, only the entries whose key they ask for."""
    if not len(query_keys) or not len(keys):
        return np.full(len(query_keys), -1, dtype=np.int64)
    if len(query_keys) * 8 >= len(keys):
        return _merged_latest_before(keys, seqs, query_keys, query_seqs)
    used = np.flatnonzero(np.isin(keys, query_keys))
    if not len(used):
        return np.full(len(query_keys), -1, dtype=np.int64)
    found = _merged_latest_before(keys[used], seqs[used], query_keys, query_seqs)
    return np.where(found >= 0, used[np.maximum(found, 0)], -1)


def _merged_latest_before(
    keys: np.ndarray, seqs: np.ndarray, query_keys: np.ndarray, query_seqs: np.ndarray
) -> np.ndarray:
    """:func:`latest_before` of every query and entry given."""
    n = len(keys)
    all_keys = np.concatenate([keys, query_keys])
    all_seqs = np.concatenate([seqs, query_seqs])
    is_entry = np.concatenate([np.ones(n, dtype=bool), np.zeros(len(query_keys), dtype=bool)])
    # queries sort before entries of the same (key, seq): only strictly earlier entries match
    order = np.lexsort((is_entry, all_seqs, all_keys))
    last = np.maximum.accumulate(np.where(is_entry[order], np.arange(len(order)), -1))
    found = np.full(len(order), -1, dtype=np.int64)
    has = last >= 0
    found[has] = order[last[has]]
    same_key = np.zeros(len(order), dtype=bool)
    same_key[has] = all_keys[found[has]] == all_keys[order[has]]
    result = np.full(len(all_keys), -1, dtype=np.int64)
    result[order] = np.where(same_key, found, -1)
    return result[n:]


def group_runs(*keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows grouped by equal ``keys`` (sorted by the first key, then the next; a group's rows
    in their own order): the rows in that order, and each group's first position there and
    the one past its last."""
    order = np.lexsort(keys[::-1])
    new = np.zeros(len(order), dtype=bool)
    new[:1] = True
    for key in keys:
        ordered = key[order]
        new[1:] |= ordered[1:] != ordered[:-1]
    starts = np.flatnonzero(new)
    return order, starts, np.append(starts[1:], len(order))[: len(starts)]


def next_in_group(keys: np.ndarray, seqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows ordered by (key, seq), and for each ordered row the position of the next row of
    the same key (-1 when it is the key's last)."""
    order = np.lexsort((seqs, keys))
    following = np.full(len(order), -1, dtype=np.int64)
    if len(order) > 1:
        same = keys[order[1:]] == keys[order[:-1]]
        following[:-1][same] = np.arange(1, len(order))[same]
    return order, following


def next_same(keys: np.ndarray, rows: np.ndarray, near: int = 64) -> np.ndarray:
    """For each of ``rows`` (indices into ``keys``), the next index whose key is its own, or
    -1. The ``near`` indices after each row are looked at first (a thread's next event is
    usually a few rows on); the rows not settled there are found by one sorted search over
    the indices of their keys."""
    found = np.full(len(rows), -1, dtype=np.int64)
    todo = np.arange(len(rows))
    for step in range(1, near + 1):
        candidate = rows[todo] + step
        todo, candidate = todo[candidate < len(keys)], candidate[candidate < len(keys)]
        hit = keys[candidate] == keys[rows[todo]]
        found[todo[hit]] = candidate[hit]
        todo = todo[~hit]
        if not len(todo):
            return found
    rest = rows[todo]
    distinct = np.unique(keys[rest])
    theirs = np.flatnonzero(np.isin(keys, distinct))
    # (key's rank, index) as one increasing number: a sorted search finds the next index
    span = len(keys) + 1
    ranked = np.searchsorted(distinct, keys[theirs]) * span + theirs
    ranked.sort()
    wanted = np.searchsorted(distinct, keys[rest]) * span + rest
    position = np.searchsorted(ranked, wanted, side="right")
    inside = position < len(ranked)
    nearest = ranked[np.minimum(position, len(ranked) - 1)]
    same = inside & (nearest // span == wanted // span)
    found[todo[same]] = nearest[same] % span
    return found


def nullable(values: np.ndarray, valid: np.ndarray) -> pd.arrays.IntegerArray:
    """An Int64 column of ``values``, null where not ``valid``."""
    return pd.arrays.IntegerArray(np.where(valid, values, 0).astype(np.int64), ~valid)


def codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(code of each row, distinct values): a categorical column's own codes and categories
    (no object array of its rows; a null row has code -1), any other column factorized."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy(), column.cat.categories.to_numpy(dtype=object)
    code, uniques = pd.factorize(column.to_numpy(dtype=object))
    return code, np.asarray(uniques, dtype=object)


def equals(column: pd.Series, value: str) -> np.ndarray:
    """``column == value`` as a bool array, from the codes of a categorical column."""
    code, uniques = codes(column)
    hit = np.flatnonzero(uniques == value)
    return code == hit[0] if len(hit) else np.zeros(len(column), dtype=bool)


def categorical(values: np.ndarray) -> pd.Categorical:
    """``pd.Categorical(values)`` of an array of str (categories sorted, a null row missing),
    built from its codes: pandas would first convert every row to an Arrow string."""
    return categorical_of_codes(*pd.factorize(np.asarray(values, dtype=object)))


def categorical_of_codes(code: np.ndarray, uniques: np.ndarray) -> pd.Categorical:
    """:func:`categorical` of ``uniques[code]`` (distinct ``uniques``; code -1: null)."""
    uniques = np.asarray(uniques, dtype=object)
    rank = np.argsort(uniques, kind="stable")
    remap = np.empty(len(rank) + 1, dtype=np.int64)
    remap[rank] = np.arange(len(rank))
    remap[-1] = -1  # code -1 (null) stays missing
    return pd.Categorical.from_codes(remap[code], categories=pd.Index(uniques[rank]))
