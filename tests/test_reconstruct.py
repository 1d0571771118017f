"""Reconstruction on the real bundles in fixtures/: episodes, folio records, lazyfree, partial."""

from __future__ import annotations

from collections import Counter
from functools import cache
from pathlib import Path

import pandas as pd
import pytest
from folio_replay.replay.folio import UNKNOWN_DIRTY_PAGE
from folio_replay.replay.reconstruct import Reconstruction, reconstruct
from folio_replay.replay.reconstruct.partial import partial_unmaps
from parse_fixtures import BUNDLES, FIRST_LAB_SCENARIOS, lab_bundle_dirs, region_kb

from folio_replay import parsers


def bundles(scenario: str = "*") -> list[Path]:
    """Lab bundles of ``scenario`` present in fixtures/ (arch/release/scenario)."""
    return lab_bundle_dirs(scenario)


@cache
def recon_of(path: Path) -> Reconstruction:
    """The reconstruction of one bundle (cached: each takes seconds)."""
    bundle = parsers.load_bundle(path)
    return reconstruct(bundle.read_trace(), bundle.meta["arch"])


def before_batching(path: Path) -> bool:
    """Whether the bundle's kernel predates the batched unmap (6.15, 354dffd29575)."""
    major, minor = parsers.load_bundle(path).meta["kernel"].split()[2].split(".")[:2]
    return (int(major), int(minor)) < (6, 15)


def ids(paths: list[Path]) -> list[str]:
    """Test ids: arch/release/scenario."""
    return [str(p.relative_to(BUNDLES)) for p in paths]


PAGEOUT_BUNDLES = [p for p in bundles() if p.name in FIRST_LAB_SCENARIOS]


@pytest.mark.parametrize("path", PAGEOUT_BUNDLES, ids=ids(PAGEOUT_BUNDLES))
def test_every_madvise_pageout_bundle_has_one_closed_pageout_episode(path: Path) -> None:
    episodes = recon_of(path).episodes
    pageout = episodes[episodes["kind"] == "madvise_pageout"]
    assert len(pageout) == 1
    assert pageout["end_line"].notna().all() and (pageout["duration_ns"] > 0).all()
    assert pageout["ret"].iloc[0] == 0 or "partial" in path.name  # partial: ENOMEM over holes


@pytest.mark.parametrize("path", bundles("microbench"), ids=ids(bundles("microbench")))
def test_microbench_64k_folios_unmapped_per_page_before_6_15_batched_after(path: Path) -> None:
    recon = recon_of(path)
    folios = recon.folios
    region = region_kb(parsers.load_bundle(path).meta)
    n = region // 64  # 2048 in the 128 MiB upstream run
    assert len(folios) == n
    assert set(folios["size_kb"]) == {64} and set(folios["outcome"]) == {"discarded"}
    episode = recon.episodes.iloc[0]
    if before_batching(path):
        assert set(folios["captured_unmap"]) == {"per_page"}
        assert episode["rss_steps"] == f"{{1: {n * 16}}}"
        assert episode["captured_mode"] == "per_page"
    else:
        assert set(folios["captured_unmap"]) == {"batched"}
        assert episode["rss_steps"] == f"{{16: {n}}}"
        assert episode["captured_mode"] == "batched"
    lazy = recon.lazyfree
    assert len(lazy) == 1 and lazy["folios"].iloc[0] == n
    assert lazy["range_len"].iloc[0] == region << 10


@pytest.mark.parametrize("path", bundles("redirty-*-64k"), ids=ids(bundles("redirty-*-64k")))
def test_redirtied_folios_are_kept_and_the_dirty_page_is_decided_only_with_evidence(
    path: Path,
) -> None:
    recon = recon_of(path)
    folios = recon.folios
    assert set(folios["outcome"]) == {"kept"}
    # put back on the LRU in the window (addresses on x86 too)
    assert len(folios) == region_kb(parsers.load_bundle(path).meta) // 64
    dirty = {"first": 0, "middle": 8, "last": 15}[path.name.split("-")[1]]  # folio_bench -d
    has_flush_events = recon.has_flush_events
    steps = recon.episodes["kept_per_page_steps"].sum()
    if not before_batching(path):  # batched kernels restore the whole batch: no evidence
        expected = UNKNOWN_DIRTY_PAGE
    elif steps:  # x86, riscv: the clean pages before the dirty one, one step each
        assert steps == dirty * len(folios)
        expected = dirty
    elif dirty == 0 and has_flush_events:  # x86: a flush, no step
        expected = 0
    else:  # arm64 (contpte unfold gathers the block's dirty bits: no step), riscv first page
        expected = UNKNOWN_DIRTY_PAGE
    assert set(folios["dirty_page"]) == {expected}


@pytest.mark.parametrize("path", bundles("partial-munmap"), ids=ids(bundles("partial-munmap")))
def test_partial_munmap_cuts_every_64k_folio_once_with_or_without_addresses(path: Path) -> None:
    recon = recon_of(path)
    n = region_kb(parsers.load_bundle(path).meta) // 64
    partial = recon.partial
    assert (partial["size_kb"] == 64).all()
    assert partial["partial_low"].sum() == partial["partial_high"].sum() == n
    # arm64/riscv traces have no page_fault_user: the address-free evidence must agree.
    blind = partial_unmaps(recon.events, recon.ledger.assign(address=pd.NA)).frame
    assert blind["partial_low"].sum() == blind["partial_high"].sum() == n
    # MADV_FREE split the cut folios: reclaim sees only small pages (15 of each folio's 16).
    assert recon.folios.empty and recon.small_discards == 15 * n


@pytest.mark.parametrize("path", bundles("pmd-*"), ids=ids(bundles("pmd-*")))
def test_pmd_folios_are_2m_and_pmd_mapped(path: Path) -> None:
    folios = recon_of(path).folios
    assert len(folios) == region_kb(parsers.load_bundle(path).meta) // 2048
    assert set(folios["size_kb"]) == {2048} and folios["pmd_mapped"].all()
    expected = "kept" if path.name == "pmd-redirty" else "discarded"
    assert set(folios["outcome"]) == {expected}


@pytest.mark.parametrize("path", bundles("pageout-call-64k"), ids=ids(bundles("pageout-call-64k")))
def test_one_folio_call_reconstructs_with_or_without_addresses(path: Path) -> None:
    """A MADV_FREE over a single live folio (pageout-call-64k): the address-free partial-unmap
    arithmetic (arm64, riscv) meets one folio of one call, cuts nothing (the call covers it
    whole), and the one 64 KiB folio is reclaimed by the one MADV_PAGEOUT."""
    recon = recon_of(path)
    blind = partial_unmaps(recon.events, recon.ledger.assign(address=pd.NA)).frame
    assert blind.empty and recon.partial.empty
    assert len(recon.folios) == 1 and int(recon.folios["size_kb"].iloc[0]) == 64
    pageout = recon.episodes[recon.episodes["kind"] == "madvise_pageout"]
    assert len(pageout) == 1


HOST = BUNDLES / "host" / "6.18.44-fc-v1300"


@pytest.mark.parametrize(
    ("scenario", "size_kb", "queued"),
    [("cut-pageout-64k", 64, True), ("cut-pageout-pmd", 2048, False)],
)
def test_a_madv_pageout_range_splits_the_folios_its_ends_cut(
    scenario: str, size_kb: int, queued: bool
) -> None:
    """MADV_PAGEOUT of lazyfree folios but the first 36 (1028) KiB and the last 20 (1020) KiB:
    madvise_cold_or_pageout_pte_range() split_folio()s the folio at each end before reclaim.
    A PTE-mapped folio is unmapped one PTE at a time on the way (split_deferred +2); a PMD
    THP's PMD split is frozen (thp_split_pmd +2 with the 14 reclaim split, no deferred split)."""
    path = HOST / scenario
    recon = recon_of(path)
    rows = recon.partial
    assert rows["call"].tolist() == ["madvise_pageout"]
    assert rows["size_kb"].tolist() == [size_kb]
    assert rows["partial_low"].tolist() == rows["partial_high"].tolist() == [2]
    assert rows["deferred_split"].tolist() == [queued]
    from folio_replay.replay.analysis import analyse

    validation = analyse(path, archs=[]).validation().set_index(["counter", "size_kb"])
    deltas = parsers.load_bundle(path).stats_delta().set_index(["counter", "size_kb"])["delta"]
    assert deltas[("split", size_kb)] == 2
    for counter, size in (("split_deferred", size_kb), ("thp_split_pmd", 0)):
        row = validation.loc[(counter, size)]
        assert row["verdict"] == "match" and row["observed"] == deltas[(counter, size)], counter
    assert validation.loc[("split_deferred", size_kb), "partial_low"] == (2 if queued else 0)
    assert validation.loc[("thp_split_pmd", 0), "observed"] == (0 if queued else 16)


def test_folios_a_madv_free_range_split_are_not_reclaimed_as_large_folios() -> None:
    """cut-free-zram (64 MiB of 64 KiB anon, MADV_FREE of 520 KiB 24 KiB into every MiB, then
    MADV_PAGEOUT of all of it to zram): each window cuts a folio at each end, which
    madvise_free_pte_range() split_folio()s (2 per window, 128). Their pieces are small pages
    from then on: the ledger ends those folios at the MADV_FREE call, and the pieces swapped
    out page by page are not taken for swap fallbacks of the folios (was: 96 records
    ``split``, swpout_fallback 96 against 0 observed)."""
    path = HOST / "cut-free-zram"
    recon = recon_of(path)
    cuts = recon.partial[recon.partial["call"] == "madvise_free"]
    assert cuts["partial_low"].sum() == cuts["partial_high"].sum() == 128
    split = recon.ledger[recon.ledger["evidence"].astype(str).str.contains("split by a madvise")]
    assert len(split) == 128 and (split["end"] == "split").all()
    calls = set(cuts["start_line"].tolist())
    assert set(split["end_line"].astype(int).tolist()) <= calls
    outcomes = recon.folios["outcome"].astype(str).value_counts().to_dict()
    assert outcomes == {"discarded": 896}
    assert not set(recon.folios["folio"]) & set(split["folio"])


def test_write_protect_faults_after_a_fork_give_each_folio_its_write_runs() -> None:
    """cow-after-fork (32 MiB of 64 KiB anon; a fork whose child exits at once write-protects
    the parent's PTEs; one write to page 1 of every folio reuses it: x86 page_fault_user
    error_code 0x7 and no allocation; MADV_FREE, MADV_PAGEOUT on 6.18.44): every folio's PTEs
    run 0 | 1 | 2-15 by their write bits, the kernel unmaps each in three batches (rss_stat
    steps -1, -1, -14, tlb_flush 1, 1, 14) and the first leaves it partially mapped:
    split_deferred +1 per folio (was 0 predicted, 512 observed)."""
    path = HOST / "cow-after-fork"
    recon = recon_of(path)
    folios = recon.folios
    assert len(folios) == 512
    assert folios["write_run_starts"].tolist() == ["1,2"] * 512
    assert set(folios["captured_unmap"].astype(str)) == {"batched_runs"}
    signature = recon.signatures[0]
    assert signature["rss_steps"] == {1: 1024, 14: 512}
    assert signature["tlb_flush_pages"][14] == 512
    from folio_replay.replay.analysis import analyse

    analysis = analyse(path, archs=["x86"])
    assert analysis.model == "batched-partial-pmd-split"
    validation = analysis.validation().set_index(["counter", "size_kb"])
    row = validation.loc[("split_deferred", 64)]
    assert row["verdict"] == "match" and row["observed"] == 512


def test_write_runs_need_a_write_to_a_present_page_inside_the_folio() -> None:
    """The fill's own faults (error_code 0x6: not present) and the write faults after the fork
    outside the 32 MiB region (the program's data pages) give no write runs; only the 512
    write-protect faults at page 1 of each folio are the folios'."""
    from folio_replay.replay.reconstruct.write_runs import write_protect_faults

    recon = recon_of(HOST / "cow-after-fork")
    faults = write_protect_faults(recon.events, recon.ledger)
    codes = recon.events.ints("fault.error_code", recon.events.rows("page_fault_user"))
    assert (codes == 0x7).sum() > len(faults) == 512
    assert faults["page"].tolist() == [1] * 512
    assert faults["folio"].nunique() == 512


@pytest.mark.parametrize(
    "release, copies, runs",
    [("6.12.118+deb13-cloud-amd64", 256, 0), ("7.3.4+deb13-cloud-amd64", 0, 256)],
)
def test_a_write_after_fork_copies_on_6_12_and_reuses_later(release, copies, runs) -> None:
    """The lab's cow-after-fork-64k (16 MiB of 64 KiB folios, a fork whose child exits, one
    write to page 1 of each folio, MADV_FREE, MADV_PAGEOUT) under x86 TCG. 6.12 reuses no
    large folio: each write fault maps a copy (an order-0 mm_page_alloc right after it), the
    folio is partially mapped from then on (split_deferred +1 each at the fault: a cow_copy
    partial row) and MADV_FREE splits it, so reclaim meets no large folio. 7.3.4 reuses the
    page: no copy, each folio's PTEs run 0 | 1 | 2-15 and reclaim unmaps it in three batches
    (split_deferred +1 each in reclaim). Both: observed split_deferred 256 matched."""
    from folio_replay.replay.analysis import analyse
    from folio_replay.replay.reconstruct.write_runs import write_protect_faults

    path = BUNDLES / "x86_64" / release / "cow-after-fork-64k"
    recon = recon_of(path)
    faults = write_protect_faults(recon.events, recon.ledger)
    assert len(faults) == 256 and int(faults["copy"].sum()) == copies
    cow = recon.partial[recon.partial["call"] == "cow_copy"]
    assert int(cow["partial_low"].sum()) == int(cow["partial_high"].sum()) == copies
    assert (recon.folios["write_run_starts"] == "1,2").sum() == runs == len(recon.folios)
    validation = analyse(path, archs=[]).validation().set_index(["counter", "size_kb"])
    row = validation.loc[("split_deferred", 64)]
    assert row["verdict"] == "match" and row["observed"] == 256


# the models of 6.15's all-or-nothing batch (it falls back to one PTE at a time) and of 6.16's
# capped batches: a folio mapped across a page-table or VMA end is partially mapped on each
CROSSING_MODELS = ["batched", "batched-partial"]


@pytest.mark.parametrize(
    ("scenario", "crossing"), [("cross-move-force-empty", 4), ("cross-protect-force-empty", 2)]
)
def test_a_folio_across_a_page_table_or_vma_end_is_unmapped_in_two_capped_batches(
    scenario: str, crossing: int
) -> None:
    """8 MiB of lazyfree 64 KiB folios, moved by mremap 32 KiB past a 2 MiB boundary (four
    folios cross a page-table end) or with a VMA end 32 KiB into two of them (mprotect of
    half), reclaimed by memory.force_empty on 6.18.44: folio_unmap_pte_batch() ends a batch at
    pmd_addr_end(addr, vma->vm_end), so each crossing folio is unmapped in two batches of 8
    pages (rss_stat -8, -8; tlb_flush 8, 8) and is partially mapped in between:
    split_deferred +1 each (was 0 predicted, the shortfall put down to other processes)."""
    from folio_replay.replay.analysis import analyse

    path = HOST / scenario
    recon = recon_of(path)
    folios = recon.folios
    capped = folios[folios["captured_unmap"].astype(str) == "batched_capped"]
    assert len(capped) == crossing and capped["batch_starts"].tolist() == ["8"] * crossing
    assert set(capped["outcome"].astype(str)) == {"discarded"}
    assert int(folios["batch_starts"].notna().sum()) == crossing
    assert set(folios["captured_unmap"].astype(str)) == {"batched", "batched_capped"}
    steps = sum((Counter(s["rss_steps"]) for s in recon.signatures.values()), Counter())
    assert steps == {16: len(folios) - crossing, 8: 2 * crossing}
    analysis = analyse(path, archs=["x86"], models=[*CROSSING_MODELS, "unbatched"])
    assert analysis.model == "batched-partial-pmd-split"
    for model in [analysis.model, *CROSSING_MODELS, "unbatched"]:
        row = (
            analysis.validation(model).set_index(["counter", "size_kb"]).loc[("split_deferred", 64)]
        )
        # before 6.15 every folio is unmapped one PTE at a time: each one is partially mapped
        expected = len(folios) if model == "unbatched" else crossing
        assert row["reclaim_low"] == row["reclaim_high"] == expected, model
        assert (row["verdict"] == "match") == (model != "unbatched"), model


def test_a_crossing_folio_redirtied_past_the_end_is_kept_after_its_first_batch() -> None:
    """cross-move-force-empty with page 15 of every 4th folio written after the move (the four
    crossing folios among them): reclaim unmaps a crossing folio's first batch (8 clean pages,
    rss_stat -8), finds the second redirtied, restores it and keeps the folio, partially
    mapped (split_deferred +1 each); the other 28 redirtied folios are restored whole. The
    kept crossing folios take the -8 steps no discarded folio took: batch_starts 8, dirty page
    at or after it."""
    from folio_replay.replay.analysis import analyse

    path = HOST / "cross-move-redirty-force-empty"
    recon = recon_of(path)
    kept = recon.folios[recon.folios["outcome"].astype(str) == "kept"]
    assert len(kept) == 32
    capped = kept[kept["batch_starts"].notna()]
    assert len(capped) == 4 and set(capped["batch_starts"].tolist()) == {"8"}
    assert set(capped["captured_unmap"].astype(str)) == {"batched_capped"}
    validation = analyse(path, archs=["x86"]).validation().set_index(["counter", "size_kb"])
    row = validation.loc[("split_deferred", 64)]
    assert row["verdict"] == "match" and row["observed"] == 4
    assert row["reclaim_low"] == row["reclaim_high"] == 4
    assert validation.loc[("pglazyfreed", 0), "observed"] == 1536


def test_madv_pageout_splits_the_folios_a_moved_range_leaves_across_a_page_table_end() -> None:
    """cross-move-pageout: the same four crossing folios met by MADV_PAGEOUT of the whole
    moved range. madvise_cold_or_pageout_pte_range() batches a folio's PTEs only to the end of
    the page table it walks and split_folio()s the crossing ones before reclaim (split_deferred
    +1 each, unmapped through migration entries); the range's ends cut nothing and the fault
    addresses are stale after the move, so the evidence is the split inside the call's window
    (pieces freed as order-0 pages)."""
    from folio_replay.replay.analysis import analyse

    path = HOST / "cross-move-pageout"
    recon = recon_of(path)
    rows = recon.partial
    assert rows["call"].tolist() == ["madvise_pageout"]
    assert rows["partial_low"].tolist() == rows["partial_high"].tolist() == [4]
    assert "walk split them" in rows["evidence"].iloc[0]
    split = recon.ledger[recon.ledger["end"].astype(str) == "split"]
    assert len(split) == 4
    assert not set(split["folio"]) & set(recon.folios["folio"])
    validation = analyse(path, archs=[]).validation().set_index(["counter", "size_kb"])
    row = validation.loc[("split_deferred", 64)]
    assert row["verdict"] == "match" and row["observed"] == row["partial_low"] == 4
