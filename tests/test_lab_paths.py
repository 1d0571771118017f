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
from parse_fixtures import BUNDLES, bundle_ids, write_runs_unseen

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


EXPLAINED = [p for p in ALL if not write_runs_unseen(p)]


@pytest.mark.parametrize("path", EXPLAINED, ids=bundle_ids(EXPLAINED))
def test_the_trace_agrees_with_the_release_table(path: Path) -> None:
    """The model replay/releases.toml gives the release reproduces the trace's signatures (no
    capture contradicts its release's range, none is left unexplained but the
    ``write_runs_unseen`` ones, tested below)."""
    analysis = analysis_of(path)
    assert analysis.model == model_for_release(release_of(analysis.bundle.meta["kernel"]))
    assert "no model reproduces" not in analysis.model_evidence


@lab_bundles_where(lambda s: s == "cow-after-fork-64k")
def test_write_runs_are_unseen_without_fault_addresses(path: Path) -> None:
    """The write after the fork leaves each folio's PTEs in runs 0 | 1 | 2-15. 7.3.4 unmaps
    them one batch per run on aarch64 too (rss_stat -1, -1, -14 per folio), but an arm64
    trace has no page_fault_user to show the runs: replay predicts one batch, says that no
    model reproduces the trace, and validation reports the split_deferred mismatch instead of
    hiding it. On x86 the faults show the runs (or, on 6.12, the copies) and all agree."""
    analysis = analysis_of(path)
    validation = analysis.validation().set_index(["counter", "size_kb"])
    row = validation.loc[("split_deferred", 64)]
    if not write_runs_unseen(path):
        assert row["verdict"] == "match"
        return
    signature = analysis.recon.signatures[0]
    assert signature["rss_steps"] == {1: 512, 14: 256}
    assert "no model reproduces" in analysis.model_evidence
    assert row["verdict"] != "match" and row["observed"] == 257


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
