"""Every anonymous large folio size at once, on this host's 6.18.44.

fixtures/bundles/host/6.18.44-fc-v1300/all-sizes-* (fixtures/host/make_host_kinds.sh,
``host_kinds all-sizes``): with every mTHP size and PMD THP enabled, each 4 MiB "staircase"
VMA starts 16 KiB past a 2 MiB boundary and is written from its start, so its faults take one
folio each of 16, 32, 64, 128, 256, 512 and 1024 KiB and one PMD-mapped 2 MiB THP.
``all-sizes-lazyfree``: 32 staircases MADV_FREE'd, the last page of every folio of every 4th
one written again, then MADV_PAGEOUT; ``all-sizes-swap``: 16 staircases swap-backed, paged out
to zram0.
"""

from __future__ import annotations

from functools import cache

import pandas as pd
import pytest
from folio_replay.replay.analysis import Analysis
from parse_fixtures import BUNDLES

from folio_replay import analyse

HOST = BUNDLES / "host" / "6.18.44-fc-v1300"
SIZES_KB = [16, 32, 64, 128, 256, 512, 1024, 2048]
PMD_KB = 2048


@cache
def analysis(name: str) -> Analysis:
    return analyse(HOST / name)


def _by_size(folios: pd.DataFrame, *columns: str) -> dict:
    counts = folios.groupby(["size_kb", *columns], observed=True).size()
    return {key: int(n) for key, n in counts.items()}


def test_lazyfree_every_size_discarded_or_kept_as_the_workload_redirtied_it() -> None:
    folios = analysis("all-sizes-lazyfree").folios
    assert sorted(folios["size_kb"].unique()) == SIZES_KB
    assert set(folios["kind"]) == {"lazyfree"}
    # 32 staircases, every 4th redirtied: 24 discarded and 8 kept of each size; 6.18 unmaps a
    # PTE-mapped lazyfree folio in one batch and discards a clean PMD-mapped THP at the PMD
    expected = {}
    for size in SIZES_KB:
        expected[(size, "discarded", "pmd" if size == PMD_KB else "batched")] = 24
        expected[(size, "kept", "batched")] = 8
    assert _by_size(folios, "outcome", "captured_unmap") == expected
    assert folios.loc[folios["size_kb"] == PMD_KB, "pmd_mapped"].all()
    assert not folios.loc[folios["size_kb"] < PMD_KB, "pmd_mapped"].any()


@pytest.mark.parametrize("name", ["all-sizes-lazyfree", "all-sizes-swap"])
def test_every_counter_of_every_size_matches_the_kernels(name: str) -> None:
    checks = analysis(name).validation()
    assert checks["match"].all(), checks[~checks["match"]]
    for counter in ("split_deferred", "swpout", "swpout_fallback"):
        sizes = set(checks.loc[checks["counter"] == counter, "size_kb"])
        assert set(SIZES_KB) <= sizes, (counter, sizes)


def test_swapbacked_every_size_swapped_out_whole_pte_by_pte() -> None:
    found = analysis("all-sizes-swap")
    folios = found.folios
    assert set(folios["kind"]) == {"swapbacked"}
    assert _by_size(folios, "outcome", "captured_unmap") == {
        (size, "discarded", "per_page"): 16 for size in SIZES_KB
    }
    swpout = found.validation()
    swpout = swpout[swpout["counter"] == "swpout"].set_index("size_kb")
    for size in SIZES_KB:  # one whole-folio swap slot each (hugepages-<size>kB/stats/swpout)
        assert swpout.at[size, "observed"] == swpout.at[size, "predicted_low"] == 16


def test_the_per_pte_kernel_would_queue_each_size_for_deferred_split() -> None:
    """6.12 (``unbatched``) on the same folios: each discarded PTE-mapped folio is partially
    mapped after its first PTE (+1); a kept one too unless its dirty page is its first, which
    the trace cannot tell (6.18 restores the whole batch): 24..32 per size on x86. A PMD THP is
    split first and its dirty PMD dirties every PTE, so a kept one stops at page 0: 24. On
    arm64 a 64 KiB folio is one contpte block whose unfold gathers the dirty bit (24); a larger
    kept one is left with blocks unfolded and contiguous and queued by its later zap (32)."""
    predictions = analysis("all-sizes-lazyfree").predictions
    unbatched = predictions[predictions["model"] == "unbatched"]
    per_size = unbatched.groupby(["arch", "size_kb"])[
        ["split_deferred_low", "split_deferred_high"]
    ].sum()
    bounds = {
        key: (int(r.split_deferred_low), int(r.split_deferred_high))
        for key, r in per_size.iterrows()
    }
    for size in SIZES_KB:
        assert bounds[("x86", size)] == ((24, 24) if size == PMD_KB else (24, 32))
    assert bounds[("arm64", 16)] == bounds[("arm64", 32)] == (24, 32)
    assert bounds[("arm64", 64)] == (24, 24)
    for size in SIZES_KB[3:]:
        assert bounds[("arm64", size)] == (32, 32)
    batched = predictions[predictions["model"] == "batched-partial-pmd-split"]
    assert batched["split_deferred_high"].sum() == 0


def test_memcg_limit_reclaims_every_size_in_many_episodes() -> None:
    """``all-sizes-memcg``: the lazyfree staircases reclaimed by the charges of new ones over
    a 144 MiB limit: 101 memcg-limit episodes, each discarding a few folios, batched at every
    mTHP size and at the PMD; the redirtied folios are kept by reference before any unmap
    (``nr_ref_keep``, in the episodes table), so none is a record. No counter contradicts the
    model."""
    found = analysis("all-sizes-memcg")
    episodes = found.episodes
    assert len(episodes) == 101 and set(episodes["kind"]) == {"memcg_reclaim"}
    folios = found.folios
    assert set(folios["kind"]) == {"lazyfree"} and set(folios["outcome"]) == {"discarded"}
    unmaps = {size: "pmd" if size == PMD_KB else "batched" for size in SIZES_KB}
    assert dict(zip(folios["size_kb"], folios["captured_unmap"])) == unmaps
    assert folios.groupby("size_kb").size().to_dict() == {
        size: 21 if size <= 128 else 20 for size in SIZES_KB
    }
    checks = found.validation()
    assert not (checks["verdict"] == "mismatch").any(), checks[checks["verdict"] == "mismatch"]
    assert checks.set_index(["counter", "size_kb"]).loc[("pglazyfreed", 0), "observed"] == 20460
    # every page reclaim scanned was discarded or kept for its references (nr_ref_keep): the
    # redirtied staircases (every 4th of 32), whole: 16 + 32 + ... + 1024 KiB and a PMD THP,
    # 1,020 pages each
    counts = episodes[["nr_scanned", "nr_reclaimed", "nr_unmap_fail", "nr_ref_keep"]].sum()
    assert counts["nr_scanned"] == counts["nr_reclaimed"] + counts["nr_ref_keep"]
    staircases, rest = divmod(int(counts["nr_ref_keep"]), sum(SIZES_KB) // 4)
    assert rest == 0 and 0 < staircases <= 32 // 4, counts
    assert counts["nr_unmap_fail"] == 0


def test_memcg_charge_failures_are_not_counted_as_traced_faults() -> None:
    """``all-sizes-memcg`` faults at its memcg's limit: a folio whose charge fails is put back
    at once (``anon_fault_fallback_charge``, not ``anon_fault_alloc``). Validation's traced
    faults leave those out (allocated, freed whole, never on the LRU): per size, the traced
    allocations it drops are the kernel's charge failures, and the rest fit within the
    kernel's ``anon_fault_alloc``."""
    found = analysis("all-sizes-memcg")
    deltas = found.deltas()
    mthp = deltas[deltas["source"] == "mthp"].set_index(["counter", "size_kb"])["delta"]
    ledger = found.recon.ledger
    allocated = ledger[ledger["file_seq"] < 0].groupby("size_kb").size()
    traced = found.facts.traced_allocs
    for size in SIZES_KB:
        charge_failed = int(mthp[("anon_fault_fallback_charge", size)])
        assert charge_failed > 0, size
        assert int(allocated[size]) - traced[size] == charge_failed, size
        assert traced[size] <= int(mthp[("anon_fault_alloc", size)]), size


def test_swapped_in_large_folios_are_allocations_the_fault_counter_misses() -> None:
    """``all-sizes-swapin``: the staircases swapped out whole to zram and read back. This
    kernel swaps each size back in whole (``swpin``; the 2 MiB THPs as two 1 MiB folios), new
    allocations the trace sees and ``anon_fault_alloc`` does not count: validation's untraced
    folios are the faulted and swapped-in ones less the traced. Every counter matches; an
    outside split of 16 KiB folios would be put down to the 29 that existed before and the 3
    faulted outside the trace (19 faulted + 16 swapped in - 32 traced)."""
    found = analysis("all-sizes-swapin")
    deltas = found.deltas()
    mthp = deltas[deltas["source"] == "mthp"].set_index(["counter", "size_kb"])
    traced = found.facts.traced_allocs
    for size in SIZES_KB:
        allocated = int(mthp.loc[("anon_fault_alloc", size), "delta"])
        swapped_in = int(mthp.loc[("swpin", size), "delta"])
        assert swapped_in >= (16 if size < PMD_KB else 0), size
        assert traced[size] <= allocated + swapped_in, size
    assert traced[1024] > int(mthp.loc[("anon_fault_alloc", 1024), "delta"])
    checks = found.validation()
    assert checks["match"].all(), checks[~checks["match"]]

    outside = deltas.copy()
    row = (outside["source"] == "mthp") & (outside["counter"] == "split_deferred")
    outside.loc[row & (outside["size_kb"] == 16), "delta"] += 1
    check = found.validation(deltas=outside).set_index(["counter", "size_kb"])
    explained = check.loc[("split_deferred", 16)]
    assert explained["verdict"] == "explained", explained
    assert explained["explained_by"].startswith(
        "activity outside the trace: 29 anon 16 kB folios existed before the capture "
        "(nr_anon), 19 were faulted during it (anon_fault_alloc) and 16 swapped in whole "
        "(swpin) of which 32 traced"
    ), explained["explained_by"]
    assert explained["explained_by"].endswith("up to +32"), explained["explained_by"]
