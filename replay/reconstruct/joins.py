"""Array joins in time order: the building blocks of reconstruction (numpy, no Python
loops over rows)."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["latest_before", "next_in_group", "nullable"]


def latest_before(
    keys: np.ndarray, seqs: np.ndarray, query_keys: np.ndarray, query_seqs: np.ndarray
) -> np.ndarray:
    """For each query, the index (into ``keys``) of the latest entry with the same key and a
    smaller seq, or -1. Entries and queries are merged in (key, seq) order."""
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


def next_in_group(keys: np.ndarray, seqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows ordered by (key, seq), and for each ordered row the position of the next row of
    the same key (-1 when it is the key's last)."""
    order = np.lexsort((seqs, keys))
    following = np.full(len(order), -1, dtype=np.int64)
    if len(order) > 1:
        same = keys[order[1:]] == keys[order[:-1]]
        following[:-1][same] = np.arange(1, len(order))[same]
    return order, following


def nullable(values: np.ndarray, valid: np.ndarray) -> pd.arrays.IntegerArray:
    """An Int64 column of ``values``, null where not ``valid``."""
    return pd.arrays.IntegerArray(np.where(valid, values, 0).astype(np.int64), ~valid)
