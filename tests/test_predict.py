"""Prediction and model recognition on the real bundles in fixtures/."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from folio_replay.replay.analysis import Analysis, analyse
from folio_replay.replay.predict import predictions_frame
from folio_replay.replay.recognise import signature_checks
from folio_replay.replay.releases import model_for_release
from folio_replay.replay.timing import reclaim_calls
from parse_fixtures import BUNDLE_DIRS as ALL
from parse_fixtures import BUNDLES
from parse_fixtures import bundle_ids as ids


@cache
def analysis_of(path: Path) -> Analysis:
    """The analysis of one bundle (cached: seconds each)."""
    return analyse(path)


@pytest.mark.parametrize("path", ALL, ids=ids(ALL))
def test_captured_model_is_the_release_model_and_the_trace_never_contradicts_it(path: Path) -> None:
    analysis = analysis_of(path)
    assert analysis.model == model_for_release(analysis.release)
    checks = signature_checks(analysis.recon, analysis.arch)
    assert checks[analysis.model]["mismatch"] == 0, analysis.model_evidence


@pytest.mark.parametrize(
    "path",
    [p for p in ALL if p.name in ("microbench", "pmd-clean")],
    ids=ids([p for p in ALL if p.name in ("microbench", "pmd-clean")]),
)
def test_clean_reclaim_signatures_tell_unbatched_from_batched(path: Path) -> None:
    analysis = analysis_of(path)
    checks = signature_checks(analysis.recon, analysis.arch)
    other = "batched" if analysis.model == "unbatched" else "unbatched"
    assert checks[analysis.model]["match"] == 1 and checks[other]["mismatch"] == 1


@pytest.mark.parametrize(
    "path",
    [p for p in ALL if p.name == "microbench"],
    ids=ids([p for p in ALL if p.name == "microbench"]),
)
def test_microbench_predictions_per_model_and_arch(path: Path) -> None:
    predictions = analysis_of(path).predictions
    for arch in ("x86", "arm64", "riscv"):
        rows = predictions[predictions["arch"] == arch].set_index("model")
        assert rows.loc["unbatched", "split_deferred_low"] == 2048
        assert rows.loc["unbatched", "split_deferred_high"] == 2048
        assert rows.loc["batched", "split_deferred_high"] == 0
        assert rows.loc["batched-partial", "split_deferred_high"] == 0
        assert (rows["pglazyfreed_low"] == 32768).all()
        # one flush request per page before 6.15 (arm64: + one contpte unfold per folio),
        # one per folio after
        assert rows.loc["unbatched", "flushes_low"] == 32768 + (2048 if arch == "arm64" else 0)
        assert rows.loc["batched", "flushes_low"] == 2048
        assert rows.loc["unbatched", "time_ns"] > rows.loc["batched", "time_ns"]


@pytest.mark.parametrize(
    "path",
    [p for p in ALL if p.name == "redirty-last-64k" and p.parent.name.startswith("7.")],
    ids=ids([p for p in ALL if p.name == "redirty-last-64k" and p.parent.name.startswith("7.")]),
)
def test_unknown_dirty_page_gives_bounds_for_the_unbatched_what_if(path: Path) -> None:
    predictions = analysis_of(path).predictions
    row = predictions[
        (predictions["model"] == "unbatched") & (predictions["arch"] == analysis_of(path).arch)
    ].iloc[0]
    # the batched kernel restores the whole folio: which page was written is not in the trace;
    # unbatched would queue a deferred split for every folio not dirty at its first page —
    # except on arm64, where a 64 KiB folio is one contpte block whose unfold gathers the
    # dirty bit into the first PTE: unbatched aborts at page 0 wherever the write was
    assert row["folios"] == 2048
    assert row["split_deferred_low"] == 0
    assert row["split_deferred_high"] == (0 if analysis_of(path).arch == "arm64" else 2048)


@pytest.mark.parametrize(
    "path",
    [p for p in ALL if p.name == "pmd-clean" and p.parent.name.startswith("6.12")],
    ids=ids([p for p in ALL if p.name == "pmd-clean" and p.parent.name.startswith("6.12")]),
)
def test_the_trace_overrules_a_release_whose_model_it_contradicts(path: Path) -> None:
    from folio_replay.replay.recognise import recognise

    analysis = analysis_of(path)
    # 6.12.116 and before have 735ecdfaf4e8 (a clean PMD THP discarded whole, one -512 rss
    # step); 6.12.117+ split it and unmap page by page. Each trace, told it comes from the
    # other side of that boundary, wins.
    actual = analysis.model
    claimed, release = (
        ("unbatched-pmd-discard", "6.12.48") if actual == "unbatched" else ("unbatched", "6.12.117")
    )
    meta = dict(analysis.bundle.meta, kernel=f"Linux version {release}+deb13-cloud-amd64 (x)")
    model, why = recognise(meta, analysis.recon, analysis.arch)
    assert model == actual
    assert f"suggests {claimed}" in why
    checks = signature_checks(analysis.recon, analysis.arch)
    assert checks[claimed]["mismatch"] == 1 and checks[actual]["match"] == 1


LAB_X86 = BUNDLES / "x86_64" / "7.0.4+deb13-cloud-amd64"


@pytest.mark.parametrize("name", ["mixed", "memcg-limit-64k"])
def test_each_reclaim_call_is_priced_and_shared_by_its_folios(name: str) -> None:
    """A MADV_PAGEOUT episode pays its table's ``pageout_call`` once per model and arch, a
    memcg limit episode a ``memcg_reclaim_call`` per try_to_free_mem_cgroup_pages() call the
    trace shows (its begin/end pairs); each row pays the share of its folios."""
    analysis = analysis_of(LAB_X86 / name)
    calls = reclaim_calls(analysis.episodes)
    ops = {op for made in calls.values() for op in made}
    assert ops == ({"pageout_call"} if name == "mixed" else {"memcg_reclaim_call"})
    episodes = analysis.episodes.set_index("episode")
    for episode, made in calls.items():
        if "memcg_reclaim_call" in made:
            assert made["memcg_reclaim_call"] == 1 + episodes.loc[episode, "nested"]
    with_call = analysis.predictions
    without = predictions_frame(analysis.bounds, analysis.tables, {})
    keys = ["model", "arch", "episode"]
    added = with_call.groupby(keys)["time_ns"].sum() - without.groupby(keys)["time_ns"].sum()
    for (model, arch, episode), ns in added.items():
        made = calls.get(episode, {})
        expected = sum(n * analysis.tables[arch].call_ns(op) for op, n in made.items())
        assert ns == pytest.approx(expected), (model, arch, episode)
    (op,) = ops
    share = with_call["primitives"].str.extract(rf"{op}=([0-9.e+-]+)")[0].astype(float)
    folios = with_call.groupby(keys)["folios"].transform("sum")
    in_call = with_call["episode"].isin(calls)
    count = with_call["episode"].map(lambda e: calls.get(e, {}).get(op, 0))
    # (the primitives text has 6 significant digits)
    expected_share = (with_call["folios"] / folios * count)[in_call]
    assert share[in_call].to_numpy() == pytest.approx(expected_share.to_numpy(), rel=1e-5)
    assert share[~in_call].isna().all()
    if name == "mixed":  # folios of several sizes share the one call
        assert with_call[in_call]["size_kb"].nunique() > 1
    else:  # measured on x86 only: the arm64 and riscv tables price no memcg reclaim call
        x86 = with_call[with_call["arch"] == "x86"]
        assert (added.xs("x86", level="arch") > 0).all() and len(x86)
        assert (added.drop("x86", level="arch") == 0).all()


PMD_X86 = [
    p for p in ALL if p.parent.parent.name == "x86_64" and p.name in ("pmd-clean", "pmd-redirty")
]


@pytest.mark.parametrize("path", PMD_X86, ids=ids(PMD_X86))
def test_x86_pmd_flushes_tell_a_pmd_discard_from_a_split(path: Path) -> None:
    """The synchronous PMD flush cannot be deferred: a clean lazyfree THP discarded at the PMD
    flushes once (pmdp_huge_clear_flush()), one split and unmapped twice (pmdp_invalidate(),
    then its PTEs); a redirtied one is left alone by the 7.x PMD discard path (2f9b43d617e2)
    and split (a flush) otherwise. So on x86 the trace decides which side of 984c0700854e a
    kernel is on: of the era's two models (6.12: per-PTE; 7.x: batched), the one of the
    captured kernel fits. On 6.12 a redirtied THP is split either way (the PMD discard returns
    before its flush when the folio is dirty): there both fit."""
    analysis = analysis_of(path)
    checks = signature_checks(analysis.recon, analysis.arch)
    split, discard = (
        ("unbatched", "unbatched-pmd-discard")
        if analysis.model.startswith("unbatched")
        else ("batched-file-pmd-split", "batched-file")
    )
    splits = analysis.model == split
    assert analysis.model in (split, discard)
    if split == "unbatched" and path.name == "pmd-redirty":
        assert checks[split] == checks[discard] == {"match": 1}
        return
    assert checks[split] == {"match" if splits else "mismatch": 1}
    assert checks[discard] == {"mismatch" if splits else "match": 1}


PMD_CLEAN = [p for p in ALL if p.name in ("pmd-clean", "memcg-limit-pmd")]


@pytest.mark.parametrize("path", PMD_CLEAN, ids=ids(PMD_CLEAN))
def test_a_pmd_discard_frees_the_deposited_table_on_every_arch(path: Path) -> None:
    """A clean lazyfree THP discarded at the PMD frees its deposited page table
    (zap_deposited_table(): one order-0 mm_page_free of the reclaiming thread); split, the
    table becomes its PTE table. So a kernel that splits (984c0700854e: 6.12.117+, 7.3.2+)
    contradicts the PMD-discard models on arm64 and riscv too, which have no tlb_flush; a
    kernel that discards fits its own model (the frees cannot contradict a split model: other
    order-0 pages are freed too)."""
    analysis = analysis_of(path)
    checks = signature_checks(analysis.recon, analysis.arch)
    with_folios = analysis.folios["episode"].nunique()
    if analysis.model in ("unbatched", "batched-file-pmd-split"):
        for model in ("unbatched-pmd-discard", "batched-file"):
            assert checks[model]["mismatch"] > 0, model
    else:
        assert checks[analysis.model] == {"match": with_folios}


def test_an_arm64_kernel_that_took_the_pmd_fix_unknown_to_the_table_is_recognised() -> None:
    """The arm64 7.3.4 pmd-clean capture, its kernel line rewritten to a 7.2.13 (a release
    whose range is batched-file, the PMD discard): the missing deposited-table frees contradict
    the release's model, and the trace wins for the split."""
    from folio_replay.replay.recognise import recognise

    analysis = analysis_of(BUNDLES / "aarch64" / "7.3.4+deb13-cloud-arm64" / "pmd-clean")
    meta = {**analysis.bundle.meta, "kernel": "Linux version 7.2.13+deb14-cloud-arm64 (x) #1"}
    model, why = recognise(meta, analysis.recon, analysis.arch)
    assert model == "batched-file-pmd-split" and "the trace wins" in why
    assert "batched-file: 1 mismatch" in why
