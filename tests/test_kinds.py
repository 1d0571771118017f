"""Folio kinds decided from the trace, checked against what the workload did.

fixtures/bundles/host/6.18.44-fc-v1300/mixed-kinds (fixtures/host/make_host_kinds.sh) holds
one process with three 64 MiB regions, each paged out by its own MADV_PAGEOUT: lazyfree 64 KiB
mTHP (MADV_FREE'd), swap-backed 64 KiB mTHP (zram swap), and a MAP_SHARED file read in after
drop_caches. The workload printed each region's address: every folio reclaim met in a region's
episode must have that region's kind, and no swap-backed or file folio is ever replayed as
lazyfree.
"""

from __future__ import annotations

import json
import re
from functools import cache

import pytest
from folio_replay.replay.analysis import Analysis
from parse_fixtures import BUNDLES

from folio_replay import analyse

MIXED = BUNDLES / "host" / "6.18.44-fc-v1300" / "mixed-kinds"
KIND_OF_STEP = {
    "pageout-lazyfree": "lazyfree",
    "pageout-swapbacked": "swapbacked",
    "pageout-file": "file",
}


@cache
def mixed() -> Analysis:
    return analyse(MIXED)


def regions() -> dict[str, tuple[int, int]]:
    """The workload's pageout steps: kind -> (address, length)."""
    out = json.loads((MIXED / "meta.json").read_text())["stdout_tail"]
    found = {}
    for step, addr, length in re.findall(r"step=(\S+) addr=(0x[0-9a-f]+) len=(\d+)", out):
        if step in KIND_OF_STEP:
            found[KIND_OF_STEP[step]] = (int(addr, 16), int(length))
    return found


@pytest.mark.parametrize("kind", ["lazyfree", "swapbacked", "file"])
def test_every_folio_of_a_region_has_its_kind(kind: str) -> None:
    start, length = regions()[kind]
    episodes = mixed().episodes
    episode = episodes[episodes["range_start"] == start]
    assert len(episode) == 1 and episode["range_len"].iat[0] == length
    folios = mixed().folios[mixed().folios["episode"] == episode["episode"].iat[0]]
    assert len(folios) > 0
    assert set(folios["kind"]) == {kind}, folios["kind"].value_counts()
    anon = folios["address"].notna()
    assert (kind == "file") != anon.all()  # page-cache folios carry no fault address
    inside = (folios["address"][anon] >= start) & (folios["address"][anon] < start + length)
    assert inside.all()


def test_counts_per_kind_and_the_evidence_that_decided_them() -> None:
    folios = mixed().folios
    counts = folios.groupby("kind", observed=True).size().to_dict()
    # 64 MiB of 64 KiB folios in each anon region; the file region's readahead folios of
    # 16 KiB .. 2 MiB and its order-0 pages (single-page steps) add up to the 64 MiB mapped
    assert counts["lazyfree"] == counts["swapbacked"] == 1024
    file_kb = int(folios[folios["kind"] == "file"]["size_kb"].sum())
    small_kb = 4 * int(mixed().episodes["small_file"].sum())
    assert (file_kb, small_kb) == (56 * 1024, 8 * 1024)
    evidence = folios.groupby("kind", observed=True)["kind_evidence"].unique()
    assert list(evidence["lazyfree"]) == ["MADV_FREE of its range before the episode"]
    assert list(evidence["file"]) == ["mm_filemap_add_to_page_cache of its pfn"]
    assert set(evidence["swapbacked"]) <= {
        "mm_vmscan_write_folio RECLAIM_WB_ANON of its pfn",
        "no MADV_FREE of it in the trace",
    }


def test_each_kind_moves_its_own_counters() -> None:
    validation = mixed().validation()
    rows = validation.set_index(["counter", "size_kb"])
    assert rows.loc[("pglazyfreed", 0), "observed"] == 1024 * 16
    assert rows.loc[("swpout", 64), "observed"] == 1024
    assert rows.loc[("pswpout", 0), "observed"] == 1024 * 16
    assert (validation["verdict"] != "mismatch").all()
    assert validation[validation["counter"].isin(["pglazyfreed", "swpout", "pswpout"])][
        "exact"
    ].all()
