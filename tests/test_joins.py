"""The array joins reconstruction is built on, against the plain loops they stand for."""

from __future__ import annotations

import numpy as np
import pytest
from folio_replay.replay.reconstruct.events import EventArrays
from folio_replay.replay.reconstruct.joins import group_runs, latest_before, next_same
from parse_fixtures import BUNDLES

from folio_replay import parsers


def _next_same_by_loop(keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return np.array(
        [next((j for j in range(r + 1, len(keys)) if keys[j] == keys[r]), -1) for r in rows],
        dtype=np.int64,
    )


@pytest.mark.parametrize("seed", range(40))
def test_next_same_finds_the_next_index_of_the_same_key(seed: int) -> None:
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, rng.integers(1, 12), size=int(rng.integers(1, 300)))
    rows = np.unique(rng.integers(0, len(keys), size=int(rng.integers(0, len(keys) + 1))))
    # a small window leaves some rows to the sorted search, a large one settles all in it
    for near in (1, 3, 64):
        assert next_same(keys, rows, near).tolist() == _next_same_by_loop(keys, rows).tolist()


def test_next_same_on_a_real_trace_gives_each_fault_its_threads_next_event() -> None:
    table = parsers.load_bundle(BUNDLES / "host/6.18.44-fc-v1300/cow-after-fork").read_trace()
    events = EventArrays(table.table)
    faults = events.rows("page_fault_user")
    found = next_same(events.pid, faults, near=2)
    assert len(faults) > 1000 and (found >= 0).all()
    # each answer is a later row of the thread, and no row of that thread lies between
    pids = events.pid
    assert (pids[found] == pids[faults]).all() and (found > faults).all()
    sample = np.linspace(0, len(faults) - 1, 200).astype(int)
    assert found[sample].tolist() == _next_same_by_loop(pids, faults[sample]).tolist()


def _latest_before_by_loop(
    keys: np.ndarray, seqs: np.ndarray, query_keys: np.ndarray, query_seqs: np.ndarray
) -> list[int]:
    found = []
    for key, seq in zip(query_keys.tolist(), query_seqs.tolist()):
        best = -1
        for i, (k, s) in enumerate(zip(keys.tolist(), seqs.tolist())):
            if k == key and s < seq and (best < 0 or s >= seqs[best]):
                best = i
        found.append(best)
    return found


@pytest.mark.parametrize("seed", range(40))
def test_latest_before_finds_the_latest_earlier_entry_of_the_same_key(seed: int) -> None:
    """Ties (a query at an entry's own seq) do not match; of equal entries the last given
    does; pfn-like keys far apart (their product with the seqs' span would overflow int64)
    are ranked first and give the same answers."""
    rng = np.random.default_rng(seed)
    n, m = (int(x) for x in rng.integers(1, 60, size=2))
    keys = rng.integers(-1, rng.integers(1, 8), size=n)
    seqs = rng.integers(0, 40, size=n)
    query_keys = rng.integers(-1, 8, size=m)
    query_seqs = rng.integers(0, 45, size=m)
    expected = _latest_before_by_loop(keys, seqs, query_keys, query_seqs)
    assert latest_before(keys, seqs, query_keys, query_seqs).tolist() == expected
    far = 1 << 58  # e.g. pfn * 64 + order of a pfn near 2**52
    assert latest_before(keys * far, seqs, query_keys * far, query_seqs).tolist() == expected


@pytest.mark.parametrize(
    "column", ["comm", "rss_stat.member", "page.gfp_flags", "tlb_flush.reason"]
)
def test_codes_at_any_rows_equal_an_encoding_of_those_rows_alone(column: str) -> None:
    """Whether the whole column was encoded first (many rows asked) or not (few), the codes
    number the values in the order they first occur at the rows, nulls as ""."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = parsers.load_bundle(BUNDLES / "host/6.18.44-fc-v1300/mixed-kinds").read_trace().table
    rng = np.random.default_rng(7)
    events = EventArrays(table)
    for share in (1, 2, 50, 1, 5000, 3):  # many rows, then few: both paths, cached or not
        rows = np.unique(rng.integers(0, events.n, size=events.n // share))
        taken = table.column(column).take(pa.array(rows))
        encoded = pc.dictionary_encode(pc.fill_null(taken, "")).combine_chunks()
        codes, values = events.codes(column, rows)
        assert values == encoded.dictionary.to_pylist()
        assert codes.tolist() == encoded.indices.to_pylist()


def test_group_runs_groups_by_every_key_keeping_each_groups_order() -> None:
    call = np.array([3, 1, 3, 1, 2, 3])
    size = np.array([64, 16, 16, 16, 64, 64])
    order, starts, ends = group_runs(call, size)
    assert order.tolist() == [1, 3, 4, 2, 0, 5]  # (1,16) (1,16) (2,64) (3,16) (3,64) (3,64)
    assert starts.tolist() == [0, 2, 3, 4] and ends.tolist() == [2, 3, 4, 6]
    order, starts, ends = group_runs(call)
    assert order.tolist() == [1, 3, 4, 0, 2, 5] and starts.tolist() == [0, 2, 3]
    assert ends.tolist() == [2, 3, 6]
    order, starts, ends = group_runs(np.empty(0, np.int64))
    assert len(order) == len(starts) == len(ends) == 0
