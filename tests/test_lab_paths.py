"""The lab bundles of every reclaim path and folio kind (fixtures/lab/scenarios.toml, made by
fixtures/lab/lab.py on Debian's 6.12.116/118 and 7.0.4/7.3.4 kernels): each capture's episodes
are of the path its scenario drives, its folios of the kind the scenario makes, and the
captured kernel's model, decided from the trace, is its release's (replay/releases.toml).
Validation of the same bundles, captured and cross-kernel: tests/test_validate.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest
from folio_replay.replay.analysis import Analysis, analyse
from folio_replay.replay.recognise import release_of
from folio_replay.replay.releases import model_for_release
from parse_fixtures import BUNDLES, bundle_ids

ARCHES = ("x86_64", "aarch64", "riscv64")
# the episode kinds each scenario's reclaim path gives (README "Reclaim paths")
PATHS = {
    "memcg-limit-64k": {"memcg_reclaim"},
    "memcg-limit-64k-nomglru": {"memcg_reclaim"},
    "memcg-limit-64k-redirty": {"memcg_reclaim"},
    "memcg-limit-pmd": {"memcg_reclaim"},
    "memcg-limit-pmd-redirty": {"memcg_reclaim"},
    "memory-reclaim-64k": {"proactive_reclaim"},
    "file-xfs-reclaim": {"proactive_reclaim"},
    "process-madvise-64k": {"process_madvise_pageout"},
    "global-pressure-mixed": {"kswapd", "direct_reclaim"},
    "global-pressure-mixed-nomglru": {"kswapd", "direct_reclaim"},
    "go-memcg": {"memcg_reclaim"},
}
# the folio kinds each scenario makes (README "Folio kinds"); redirtied lazyfree folios that
# memcg reclaim keeps are swap-backed again when it meets them next
KINDS = {
    "swap-zram-64k": {"swapbacked"},
    "swap-zram-pmd": {"swapbacked"},
    "swap-file-64k": {"swapbacked"},
    "shmem-64k": {"shmem"},
    "file-xfs-pageout": {"file"},
    "file-xfs-pageout-dirty": {"file"},
    "file-xfs-reclaim": {"file"},
    "memcg-limit-64k-redirty": {"lazyfree", "swapbacked"},
    "memcg-limit-pmd-redirty": {"lazyfree", "swapbacked"},
    "go-memcg": {"lazyfree"},  # Go's scavenger returns heap spans with MADV_FREE
}
# mixed-kinds: one MADV_PAGEOUT per region, in this order
MIXED_KINDS = ["lazyfree", "swapbacked", "file"]


def lab_bundles() -> list[Path]:
    """Every lab bundle (fixtures/bundles/<arch>/<release>/<scenario>)."""
    return sorted(p.parent for arch in ARCHES for p in (BUNDLES / arch).glob("*/*/meta.json"))


ALL = lab_bundles()


@cache
def analysis_of(path: Path) -> Analysis:
    return analyse(path, archs=[])


def scenario(path: Path) -> str:
    return json.loads((path / "meta.json").read_text())["scenario"]


def lab_bundles_where(wanted: Callable[[str], bool]) -> pytest.MarkDecorator:
    """Parametrize ``path`` over the lab bundles whose scenario is ``wanted``."""
    paths = [p for p in ALL if wanted(scenario(p))]
    return pytest.mark.parametrize("path", paths, ids=bundle_ids(paths))


@pytest.mark.parametrize("path", ALL, ids=bundle_ids(ALL))
def test_the_trace_agrees_with_the_release_table(path: Path) -> None:
    """The model replay/releases.toml gives the release reproduces the trace's signatures (no
    capture contradicts its release's range, none is left unexplained)."""
    analysis = analysis_of(path)
    assert analysis.model == model_for_release(release_of(analysis.bundle.meta["kernel"]))
    assert "no model reproduces" not in analysis.model_evidence


@pytest.mark.parametrize(
    ("machine", "release", "arch"),
    [
        ("aarch64", "7.0.4+deb13-cloud-arm64", "arm64"),
        ("aarch64", "7.3.4+deb13-cloud-arm64", "arm64"),
        ("riscv64", "7.2.13+deb14-riscv64", "riscv"),
    ],
)
def test_write_runs_without_fault_addresses_are_read_from_the_rss_steps(
    machine: str, release: str, arch: str
) -> None:
    """The write after the fork leaves each folio's PTEs in runs 0 | 1 | 2-15, and 7.x unmaps
    them one batch per run on aarch64 and riscv64 too (rss_stat -1, -1, -14 per folio). Their
    traces have no page_fault_user (riscv's 7.2 has no present bit) to show the runs, but the
    three adjacent steps that make each folio do (batched_steps, batch_starts 1,2): the
    captured model reproduces the trace and predicts split_deferred +1 per folio. The trace
    cannot tell runs of other write bits from page-table or VMA ends, so the models that
    ignore write bits (6.15's batched, 6.16's batched-partial) get bounds: 0 (runs: one batch)
    to 256 (ends: several)."""
    path = BUNDLES / machine / release / "cow-after-fork-64k"
    analysis = analyse(path, archs=[arch])
    folios = analysis.folios
    assert len(folios) == 256 and folios["write_run_starts"].isna().all()
    assert set(folios["captured_unmap"].astype(str)) == {"batched_steps"}
    assert folios["batch_starts"].tolist() == ["1,2"] * 256
    assert analysis.recon.signatures[0]["rss_steps"] == {1: 512, 14: 256}
    assert "signatures agree" in analysis.model_evidence
    predicted = analysis.predictions.set_index("model")
    bounds = predicted[["split_deferred_low", "split_deferred_high"]].astype(int)
    assert bounds.loc[analysis.model].tolist() == [256, 256]
    assert bounds.loc["unbatched"].tolist() == [256, 256]
    assert bounds.loc["batched-partial"].tolist() == bounds.loc["batched"].tolist() == [0, 256]


def test_a_copy_on_write_copy_without_fault_addresses_shows_as_the_madv_free_split() -> None:
    """aarch64 6.12.118 copies page 1 of each 64 KiB folio at the write after the fork (no
    page_fault_user on arm64 to show it): each folio is partially mapped (split_deferred +1)
    and the MADV_FREE walk, whose batch stops at the copied page, splits it (split +256). The
    split inside MADV_FREE's window is the evidence: one exact partial row of 256, reclaim
    meets no large folio, and validation matches 256 (was 0 predicted)."""
    path = BUNDLES / "aarch64" / "6.12.118+deb13-cloud-arm64" / "cow-after-fork-64k"
    analysis = analyse(path, archs=[])
    partial = analysis.recon.partial
    assert partial["call"].tolist() == ["madvise_free"] and partial["size_kb"].tolist() == [64]
    assert partial["partial_low"].tolist() == partial["partial_high"].tolist() == [256]
    assert analysis.folios.empty
    row = analysis.validation().set_index(["counter", "size_kb"]).loc[("split_deferred", 64)]
    assert row["verdict"] == "match" and row["observed"] == row["partial_low"] == 256


@lab_bundles_where(lambda s: s in PATHS)
def test_episodes_are_of_the_scenarios_reclaim_path(path: Path) -> None:
    episodes = analysis_of(path).episodes
    with_folios = episodes[episodes["episode"].isin(analysis_of(path).folios["episode"])]
    assert len(with_folios) > 0
    assert set(with_folios["kind"]) <= PATHS[scenario(path)]
    # only MADV_PAGEOUT advises a range: the other paths' episodes have none (null, not a
    # sentinel number)
    assert with_folios["range_start"].isna().all() and with_folios["range_len"].isna().all()


@lab_bundles_where(lambda s: s in KINDS)
def test_folios_are_of_the_kind_the_scenario_makes(path: Path) -> None:
    folios = analysis_of(path).folios
    assert len(folios) > 0
    assert set(folios["kind"].astype(str)) <= KINDS[scenario(path)]


@lab_bundles_where(lambda s: s == "mixed-kinds")
def test_mixed_kinds_episode_by_episode(path: Path) -> None:
    """One MADV_PAGEOUT per region: lazyfree, then swap-backed, then file folios."""
    analysis = analysis_of(path)
    episodes = analysis.episodes.sort_values("start_ns")
    assert episodes["kind"].tolist() == ["madvise_pageout"] * 3
    kinds = [
        set(analysis.folios.loc[analysis.folios["episode"] == e, "kind"].astype(str))
        for e in episodes["episode"]
    ]
    assert kinds == [{kind} for kind in MIXED_KINDS]


@lab_bundles_where(lambda s: s.endswith("nomglru"))
def test_mglru_off_reclaims_the_same_kinds(path: Path) -> None:
    """MGLRU changes which folios reach shrink_folio_list(), not how they are unmapped: the
    classic-LRU capture's folios are of the kinds and outcomes its MGLRU twin's are."""
    twin = path.parent / scenario(path).removesuffix("-nomglru")
    if not twin.is_dir():
        pytest.skip(f"no {twin.name} bundle of {path.parent.name}")
    mglru = json.loads((twin / "meta.json").read_text())
    classic = json.loads((path / "meta.json").read_text())
    assert (mglru.get("mglru"), classic.get("mglru")) != (None, None)
    outcomes = [
        set(
            zip(
                analysis_of(p).folios["kind"].astype(str),
                analysis_of(p).folios["outcome"].astype(str),
            )
        )
        for p in (twin, path)
    ]
    assert outcomes[0] == outcomes[1]


@lab_bundles_where(lambda s: s == "go-memcg")
def test_madv_free_of_part_of_a_folio_splits_it_and_queues_it_once(path: Path) -> None:
    """Go's scavenger MADV_FREEs spans whose ends may fall inside a 64 KiB folio: the kernel
    splits that folio (mm/madvise.c madvise_free_pte_range(); mTHP ``split`` +1) and the split
    queues it for deferred split once (split_deferred +1, on every release). The partial table
    counts those splits: exactly where the trace has fault addresses (x86_64), within bounds
    otherwise; and the prediction of split_deferred holds either way."""
    analysis = analysis_of(path)
    partial = analysis.recon.partial
    free = partial[partial["call"] == "madvise_free"]
    split = analysis.bundle.stats_delta().query(
        "source == 'mthp' and counter == 'split' and size_kb == 64"
    )["delta"]
    splits = int(split.sum())
    assert splits > 0  # in every lab run some span ends fell inside a folio
    assert free["partial_low"].sum() <= splits <= free["partial_high"].sum()
    if analysis.arch == "x86":
        assert free["partial_low"].sum() == free["partial_high"].sum() == splits
    row = analysis.validation().query("counter == 'split_deferred' and size_kb == 64")
    assert row["match"].all(), row.to_string()
