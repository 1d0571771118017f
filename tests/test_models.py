"""The unmap models against what real kernels did in the lab bundles
(fixtures/bundles/<arch>/<release>/<scenario>/, made by fixtures/lab/lab.py under QEMU).

For every bundle of a scenario whose folios reclaim unmaps whole (all but ``partial-munmap``,
whose folios MADV_FREE splits before reclaim sees them), the folio population is read from the
bundle's meta.json (region size and offset from a 2 MiB boundary from the folio_bench command,
laid out as the fault path does: each fault gets the largest enabled THP size whose naturally
aligned block starts at the faulting address and fits in the region, so ``mixed`` gets 16, 64
and 2048 KiB folios; dirty page from ``-m redirty -d first|last``), run through a model,
multiplied by the number of folios of each size and compared with:
- the bundle's stats deltas (split_deferred per size, thp_split_pmd, thp_deferred_split_page,
  pglazyfreed), for the model of the captured kernel and, cross-kernel, for the model of the
  other kernel of the same arch against that kernel's bundle of the same scenario;
- the trace inside the workload's MADV_PAGEOUT call: the rss_stat MM_ANONPAGES steps and, on
  x86, the tlb_flush events (pages per event).
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import replace
from functools import cache
from pathlib import Path

import pandas as pd
import pytest
from folio_replay.parsers import load_bundle
from folio_replay.replay.folio import UNKNOWN_DIRTY_PAGE, FolioState, expand_unknown
from folio_replay.replay.models import MODELS, unmap
from folio_replay.replay.releases import model_for_release, release_distance

BUNDLES = Path(__file__).resolve().parent.parent / "fixtures" / "bundles"
WHOLE_FOLIO_SCENARIOS = (
    "microbench",
    "redirty-first-64k",
    "redirty-last-64k",
    "pmd-clean",
    "pmd-redirty",
    "mixed",
)
COUNTERS = (
    ("split_deferred", "mthp"),
    ("thp_split_pmd", "vmstat"),
    ("thp_deferred_split_page", "vmstat"),
    ("pglazyfreed", "vmstat"),
)
# tlb_flush reasons of flushes made for the unmap (not context switches): arch/x86/mm/tlb.c.
UNMAP_FLUSH_REASONS = ("TLB_LOCAL_SHOOTDOWN", "TLB_LOCAL_MM_SHOOTDOWN", "TLB_REMOTE_SEND_IPI")
CONTPTE_PAGES = 16


def lab_bundles() -> list[Path]:
    """Every lab bundle of a whole-folio scenario."""
    return sorted(
        p
        for arch in ("x86_64", "aarch64", "riscv64")
        for p in (BUNDLES / arch).glob("*/*")
        if p.name in WHOLE_FOLIO_SCENARIOS
    )


@cache
def bundle(path: Path):
    return load_bundle(path)


def folio_layout(region_kb: int, offset_kb: int, enabled_kb: list[int]) -> Counter:
    """Folio sizes (KiB) -> count that folio_bench's sequential memset faults into a region of
    REGION_KB starting OFFSET_KB past a 2 MiB boundary: each fault gets the largest enabled size
    whose naturally aligned block starts at the faulting address and ends inside the region
    (mm/memory.c alloc_anon_folio(): thp_vma_suitable_orders() keeps the orders whose aligned
    block lies in the VMA, pte_range_none() drops those overlapping pages already faulted;
    __handle_mm_fault() checks the PMD order alike)."""
    layout: Counter = Counter()
    address, end = offset_kb, offset_kb + region_kb
    while address < end:
        fits = [size for size in enabled_kb if address % size == 0 and address + size <= end]
        if not fits:
            raise ValueError(f"page-sized folios at {address} KiB: no large folio model")
        layout[max(fits)] += 1
        address += max(fits)
    return layout


def populations(meta: dict) -> list[tuple[FolioState, int]]:
    """The folios reclaim unmaps in the bundle, one state per folio size, and how many of each."""
    args = meta["command"]
    option = {args[i]: args[i + 1] for i in range(1, len(args) - 1) if args[i].startswith("-")}
    thp = meta["thp"]
    enabled = [
        int(size)
        for size, mode in thp["sizes"].items()
        if mode == "always" or (mode == "inherit" and thp["enabled"] == "always")
    ]
    layout = folio_layout(int(option["-s"]), int(option.get("-o", 0)), enabled)
    out = []
    for folio_kb, folios in sorted(layout.items()):
        nr_pages = folio_kb // 4
        dirty = None
        if option.get("-m") == "redirty":
            dirty = nr_pages - 1 if option.get("-d") == "last" else 0
        contpte = (
            meta["arch"] == "aarch64" and nr_pages % CONTPTE_PAGES == 0
        )  # a PMD split folds too
        out.append(
            (
                FolioState(
                    nr_pages=nr_pages, pmd_mapped=nr_pages == 512, dirty_page=dirty, contpte=contpte
                ),
                folios,
            )
        )
    return out


def population(meta: dict) -> tuple[FolioState, int]:
    """The folio every reclaim unmap of a single-size bundle sees, and how many of them."""
    ((state, folios),) = populations(meta)
    return state, folios


def observed(path: Path, size_kb: int) -> dict[str, int]:
    """The bundle's deltas of the counters the models predict."""
    delta = bundle(path).stats_delta()
    out = {}
    for counter, source in COUNTERS:
        rows = delta[(delta["counter"] == counter) & (delta["source"] == source)]
        if source == "mthp":
            rows = rows[rows["size_kb"] == size_kb]
        out[counter] = int(rows["delta"].sum())
    return out


def observed_deltas(path: Path, sizes_kb: list[int]) -> dict[tuple[str, int], int]:
    """(counter, size_kb) -> delta: the mTHP counters per folio size, the vmstat ones as size 0."""
    out = {}
    for size_kb in sizes_kb:
        for counter, value in observed(path, size_kb).items():
            source = dict(COUNTERS)[counter]
            out[counter, size_kb if source == "mthp" else 0] = value
    return out


def predicted(model: str, pops: list[tuple[FolioState, int]]) -> dict[tuple[str, int], int]:
    """(counter, size_kb) -> the counters of the reclaim unmaps of each population (state,
    folios), plus those of the munmap of the region that folio_bench does after MADV_PAGEOUT
    (``zap_counters`` of the kept folios); vmstat counters summed over sizes as size 0."""
    out: Counter = Counter()
    for state, folios in pops:
        result = MODELS[model].run(state)
        for counter, source in COUNTERS:
            key = (counter, state.size_kb if source == "mthp" else 0)
            out[key] += (result.counters[counter] + result.zap_counters[counter]) * folios
    return dict(out)


def pageout_window(path: Path) -> pd.DataFrame:
    """The events between the workload's MADV_PAGEOUT entry and its exit."""
    events = bundle(path).read_trace().to_pandas()
    enter = events[
        (events["event"] == "sys_enter_madvise") & (events["madvise.behavior"] == "MADV_PAGEOUT")
    ]
    assert len(enter) == 1, f"{path}: one MADV_PAGEOUT call expected"
    start = enter.iloc[0]
    exits = events[
        (events["event"] == "sys_exit_madvise")
        & (events["pid"] == start["pid"])
        & (events["line"] > start["line"])
    ]
    end_line = exits.iloc[0]["line"]
    window = events[(events["line"] > start["line"]) & (events["line"] < end_line)]
    before = events[(events["line"] < start["line"]) & (events["event"] == "rss_stat")]
    return window, before


def rss_steps(window: pd.DataFrame, before: pd.DataFrame) -> Counter:
    """MM_ANONPAGES decrements (pages) of each rss_stat event in the window (the first one's
    step taken from the last earlier event of the same mm)."""
    anon = window[(window["event"] == "rss_stat") & (window["rss_stat.member"] == "MM_ANONPAGES")]
    if anon.empty:
        return Counter()
    mm_id = anon["rss_stat.mm_id"].iloc[0]
    previous = before[
        (before["rss_stat.mm_id"] == mm_id) & (before["rss_stat.member"] == "MM_ANONPAGES")
    ]["rss_stat.size"]
    sizes = [int(previous.iloc[-1]), *anon["rss_stat.size"].astype(int).tolist()]
    return Counter((a - b) // 4096 for a, b in itertools.pairwise(sizes))


def release_of(path: Path) -> str:
    return bundle(path).meta["kernel_release"]


@pytest.mark.parametrize("path", lab_bundles(), ids=lambda p: str(p.relative_to(BUNDLES)))
def test_population_is_what_the_faults_allocated(path):
    """The folio sizes and counts derived from the command are the THP allocations the kernel
    traced while the workload's memset faulted the region in: after the munmap of the slack
    past the region's end (the MADV_FREE start + the -s size), before its next system call)."""
    events = bundle(path).read_trace().to_pandas()
    workload = events[events["comm"] == "folio_bench"]
    args = bundle(path).meta["command"]
    region = int(args[args.index("-s") + 1]) << 10
    free = workload[
        (workload["event"] == "sys_enter_madvise") & (workload["madvise.behavior"] == "MADV_FREE")
    ].iloc[0]
    tail = workload[
        (workload["event"] == "sys_enter_munmap")
        & (workload["munmap.addr"] == free["madvise.start"] + region)
    ]
    assert len(tail) == 1
    start = tail["line"].iloc[0]
    syscalls = workload[workload["event"].str.startswith("sys_enter_") & (workload["line"] > start)]
    end = syscalls["line"].iloc[0]
    faults = workload[
        (workload["event"] == "mm_page_alloc")
        & workload["line"].between(start, end)
        & workload["page.gfp_flags"].str.contains("GFP_TRANSHUGE")
    ]
    allocated = Counter(4 << int(order) for order in faults["page.order"])
    assert allocated == Counter(
        {state.size_kb: folios for state, folios in populations(bundle(path).meta)}
    )


def test_x86_lab_bundles_present():
    """Both x86 kernels' bundles of every whole-folio scenario are in the fixtures."""
    found = {
        (p.parent.name.split(".")[0] + "." + p.parent.name.split(".")[1], p.name)
        for p in lab_bundles()
        if p.parent.parent.name == "x86_64"
    }
    for scenario in WHOLE_FOLIO_SCENARIOS:
        assert ("6.12", scenario) in found and any(
            series.startswith("7.") and s == scenario for series, s in found
        )


@pytest.mark.parametrize("path", lab_bundles(), ids=lambda p: str(p.relative_to(BUNDLES)))
def test_captured_kernel_model_predicts_its_counters(path):
    """The model of the captured kernel, times the folio count of each size, gives the stats
    deltas."""
    pops = populations(bundle(path).meta)
    model = model_for_release(release_of(path))
    assert predicted(model, pops) == observed_deltas(path, [s.size_kb for s, _ in pops])


def _other_kernel(path: Path) -> list[Path]:
    """The same scenario, run alike (the same workload command), on the other kernel series of
    the same arch."""
    series = release_of(path).split(".")[0]
    command = bundle(path).meta["command"]
    return [
        p
        for p in lab_bundles()
        if p.parent.parent == path.parent.parent
        and p.name == path.name
        and release_of(p).split(".")[0] != series
        and bundle(p).meta["command"] == command
    ]


@pytest.mark.parametrize("path", lab_bundles(), ids=lambda p: str(p.relative_to(BUNDLES)))
def test_cross_kernel_model_predicts_the_other_kernel(path):
    """This bundle's folios through the other kernel's model give that kernel's deltas
    (6.12 -> batched-partial predicts 7.x; 7.x -> unbatched predicts 6.12)."""
    others = _other_kernel(path)
    if not others:
        pytest.skip("no bundle of this scenario from the other kernel series yet")
    pops = populations(bundle(path).meta)
    for other in others:
        model = model_for_release(release_of(other))
        assert predicted(model, pops) == observed_deltas(other, [s.size_kb for s, _ in pops])


@pytest.mark.parametrize("path", lab_bundles(), ids=lambda p: str(p.relative_to(BUNDLES)))
def test_trace_signature(path):
    """Per-folio rss_stat steps (and x86 tlb_flush pages) times the folio count of each size
    are the events the kernel emitted during MADV_PAGEOUT."""
    model = MODELS[model_for_release(release_of(path))].run
    expected_rss, expected_flushes = Counter(), Counter()
    for state, folios in populations(bundle(path).meta):
        result = model(state)
        for step, n in Counter(result.rss_steps).items():
            expected_rss[step] += n * folios
        for pages, n in Counter(result.tlb_flush_pages).items():
            expected_flushes[pages] += n * folios
    window, before = pageout_window(path)
    assert rss_steps(window, before) == expected_rss
    if bundle(path).meta["arch"] == "x86_64":
        flushes = window[
            (window["event"] == "tlb_flush") & window["tlb_flush.reason"].isin(UNMAP_FLUSH_REASONS)
        ]
        assert Counter(flushes["tlb_flush.pages"].astype(int)) == expected_flushes


def test_microbench_headline():
    """The 354dffd29575 headline on real kernels: 2048 split_deferred on 6.12, 0 on 7.x, and
    the unbatched/batched models say so from the same folios."""
    paths = [
        p for p in lab_bundles() if p.name == "microbench" and p.parent.parent.name == "x86_64"
    ]
    by_series = {release_of(p).split(".")[0]: p for p in paths}
    state, folios = population(bundle(by_series["6"]).meta)
    assert folios == 2048 and state.nr_pages == 16
    assert observed(by_series["6"], 64)["split_deferred"] == 2048
    assert observed(by_series["7"], 64)["split_deferred"] == 0
    assert MODELS["unbatched"].run(state).counters["split_deferred"] * folios == 2048
    assert MODELS["batched"].run(state).counters["split_deferred"] == 0
    assert MODELS["batched-partial"].run(state).counters["split_deferred"] == 0


def test_unbatched_per_page_signature_on_6_12_microbench():
    """6.12 microbench, one 64 KiB folio: 16 rss steps of 1 page, 16 flushes of 1 page, one
    deferred split; the same numbers as the capture's 32768 / 2048 events."""
    path = next(
        p
        for p in lab_bundles()
        if p.name == "microbench"
        and release_of(p).startswith("6.12")
        and p.parent.parent.name == "x86_64"
    )
    state, folios = population(bundle(path).meta)
    result = MODELS["unbatched"].run(state)
    assert result.rss_steps == [1] * 16 and result.tlb_flush_pages == [1] * 16
    assert result.counters["split_deferred"] == 1 and result.outcome == "discarded"
    window, before = pageout_window(path)
    assert rss_steps(window, before) == Counter({1: 16 * folios})


def test_batched_signature_on_7_microbench():
    """7.x microbench, one 64 KiB folio: one rss step of 16, one tlb_flush of 16 pages."""
    path = next(
        p
        for p in lab_bundles()
        if p.name == "microbench"
        and release_of(p).startswith("7.")
        and p.parent.parent.name == "x86_64"
    )
    state, folios = population(bundle(path).meta)
    for model in ("batched", "batched-partial"):
        result = MODELS[model].run(state)
        assert result.rss_steps == [16] and result.tlb_flush_pages == [16]
        assert not result.counters["split_deferred"]
    window, _ = pageout_window(path)
    flushes = window[window["event"] == "tlb_flush"]
    assert (flushes["tlb_flush.pages"] == 16).sum() == folios


def test_unknown_dirty_page_is_refused_and_expanded():
    """A model needs a concrete dirty page; expand_unknown lists one state per mapped page,
    and the 6.12 redirty bundles' two cases (first, last) are among them."""
    state = FolioState(nr_pages=16, dirty_page=UNKNOWN_DIRTY_PAGE)
    with pytest.raises(ValueError, match="expand_unknown"):
        MODELS["unbatched"].run(state)
    states = expand_unknown(state)
    assert [s.dirty_page for s in states] == list(range(16))
    for path in lab_bundles():
        if path.name.startswith("redirty") and path.parent.parent.name == "x86_64":
            real, _ = population(bundle(path).meta)
            assert replace(real, dirty_page=UNKNOWN_DIRTY_PAGE) == state
            assert real in states


def test_contpte_makes_6_12_see_the_last_page_dirty_at_the_first():
    """6.12, 64 KiB folios redirtied at their last page: x86 unmaps 15 pages first and queues
    every folio for deferred split; arm64 unfolds the contpte block at the first PTE, which
    gathers the block's dirty bit into it, so nothing is unmapped and nothing queued. The
    unbatched model says both from the same folio, with and without contpte."""
    paths = {
        p.parent.parent.name: p
        for p in lab_bundles()
        if p.name == "redirty-last-64k" and release_of(p).startswith("6.12")
    }
    if "aarch64" not in paths:
        pytest.skip("no aarch64 6.12 bundle yet")
    x86_state, folios = population(bundle(paths["x86_64"]).meta)
    arm_state, _ = population(bundle(paths["aarch64"]).meta)
    assert arm_state == replace(x86_state, contpte=True)
    assert observed(paths["x86_64"], 64)["split_deferred"] == folios
    assert observed(paths["aarch64"], 64)["split_deferred"] == 0
    x86, arm = MODELS["unbatched"].run(x86_state), MODELS["unbatched"].run(arm_state)
    assert (x86.outcome, x86.counters["split_deferred"], len(x86.rss_steps)) == ("partial", 1, 15)
    assert (arm.outcome, arm.counters["split_deferred"], arm.rss_steps) == ("kept", 0, [])
    assert arm.ops["contpte_unfold"] == 1


@pytest.mark.parametrize(
    "release, model",
    [
        ("6.10.14", "unbatched"),
        ("6.11.0", "unbatched-pmd-discard"),
        ("6.12.116", "unbatched-pmd-discard"),
        ("6.12.117+deb13-cloud-amd64", "unbatched"),
        ("6.14.11", "unbatched-pmd-discard"),
        ("6.15.0", "batched"),
        ("6.15.6-arch1-1", "batched"),
        ("6.15.7", "batched-partial"),
        ("6.16-rc5", "batched-partial"),
        ("6.18.3", "batched-partial"),
        ("6.18.19", "batched-partial"),
        ("6.18.20", "batched-partial-respect-write"),
        ("6.18.43", "batched-partial-respect-write"),
        ("6.18.44-fc-v1300", "batched-partial-pmd-split"),
        ("6.19.1", "batched-partial"),
        ("6.19.9", "batched-partial"),
        ("6.19.10", "batched-partial-respect-write"),
        ("7.0.13", "batched-file"),
        (
            "Linux version 7.2.13+deb14-cloud-arm64 (debian-kernel@lists.debian.org) #1 SMP",
            "batched-file",
        ),
        ("7.3.1", "batched-file"),
        ("7.3.2", "batched-file-pmd-split"),
        ("7.4-rc1", "batched-file-pmd-split"),
    ],
)
def test_model_for_release_boundaries(release, model):
    """Every range of replay/releases.toml on both sides of its boundary: 735ecdfaf4e8 (6.11),
    stable "don't discard lazyfree THPs at PMD level" (6.12.117, 7.3.2; 6.18.44 the first 6.18.y
    known to carry it), 354dffd29575 (6.15),
    ddd05742b45b (6.16; stable 510fe9c15d07 in 6.15.7), 29f40594a281 (7.0; stable 6.18.20,
    6.19.10), a67fe41e214f (7.0)."""
    assert model_for_release(release) == model


def test_release_distance_ranks_the_neighbouring_behaviours_first():
    """When the trace fits several models, the one of the nearest releases is chosen: 6.12.117
    is one stable release from 735ecdfaf4e8's range, far from every batched one; a release
    shadowed by a later range (6.12.117 lies in [6.11, 6.15) too) is not counted as inside."""
    assert release_distance("unbatched", "6.12.117") == 0
    assert release_distance("unbatched-pmd-discard", "6.12.117") == 1
    assert release_distance("unbatched-pmd-discard", "6.13.2") == 0
    by_distance = sorted(
        ("batched", "batched-file", "batched-partial", "unbatched-pmd-discard"),
        key=lambda model: release_distance(model, "6.12.117"),
    )
    assert by_distance == ["unbatched-pmd-discard", "batched", "batched-partial", "batched-file"]
    assert release_distance("batched-file", "7.3.4") < release_distance("batched", "7.3.4")


def test_model_for_release_refuses_garbage():
    with pytest.raises(ValueError, match="not a kernel release"):
        model_for_release("cloud-amd64")


def test_host_capture_is_batched_partial():
    """This machine's 6.18 capture (folio-replay capture): its release (6.18.44) maps to
    batched-partial-pmd-split, batched-partial for PTE-mapped folios, whose 64 KiB signature
    (one rss step and one tlb_flush of 16 pages per folio) is what the trace shows for the 2048
    folios of the microbench."""
    path = BUNDLES / "host/6.18.44-fc-v669/microbench"
    meta = bundle(path).meta
    release = meta["kernel"].split()[2]
    assert model_for_release(release) == "batched-partial-pmd-split"
    result = MODELS["batched-partial-pmd-split"].run(FolioState(nr_pages=16))
    assert result == MODELS["batched-partial"].run(FolioState(nr_pages=16))
    window, before = pageout_window(path)
    assert rss_steps(window, before) == Counter({16: 2048}) and result.rss_steps == [16]
    flushes = window[
        (window["event"] == "tlb_flush") & window["tlb_flush.reason"].isin(UNMAP_FLUSH_REASONS)
    ]
    assert Counter(flushes["tlb_flush.pages"].astype(int)) == Counter({16: 2048})
    assert result.tlb_flush_pages == [16]


def test_models_emit_only_vocabulary_ops():
    """Every op a model counts is in replay/costs/ops.toml, so every table prices it."""
    import tomllib

    from folio_replay.replay.costs.tables import COSTS_DIR

    vocabulary = tomllib.loads((COSTS_DIR / "ops.toml").read_text())["software"]
    states = [
        FolioState(16),
        FolioState(16, dirty_page=15, contpte=True),
        FolioState(512, pmd_mapped=True),
        FolioState(512, pmd_mapped=True, dirty_page=0, contpte=True),
        FolioState(32, batch_limit=8, contpte=True, dirty_page=20),
    ]
    for model in (m.run for m in MODELS.values()):
        for state in states:
            assert set(model(state).ops) <= set(vocabulary)


@pytest.mark.parametrize(
    "path",
    [
        p
        for arch in ("x86_64", "aarch64", "riscv64")
        for p in sorted((BUNDLES / arch).glob("*/partial-munmap"))
    ],
    ids=lambda p: str(p.relative_to(BUNDLES)),
)
def test_genuine_partial_unmap_is_not_reclaim(path):
    """partial-munmap: the munmap of one page per 64 KiB folio queues each folio once
    (split_deferred = folios), MADV_FREE then splits them (split = folios), so reclaim sees
    no large folio; a folio reclaim did find already partially mapped would add nothing in
    any model."""
    meta = bundle(path).meta
    state, folios = population(meta)
    delta = bundle(path).stats_delta()
    mthp = delta[(delta["source"] == "mthp") & (delta["size_kb"] == state.size_kb)]
    by_counter = dict(zip(mthp["counter"], mthp["delta"]))
    assert by_counter["split_deferred"] == folios and by_counter["split"] == folios
    window, before = pageout_window(path)
    assert set(rss_steps(window, before)) == {1}  # only 4 KiB pages are reclaimed
    partial = replace(state, mapped_pages=state.nr_pages - 1, partially_mapped=True)
    for model in (m.run for m in MODELS.values()):
        assert not model(partial).counters["split_deferred"]


def test_every_release_range_cites_its_change():
    """Each range of releases.toml names its commit (or says none was found), title, first
    mainline release and the source read to check it."""
    from folio_replay.replay.releases import release_ranges

    for entry in release_ranges():
        assert entry.model in MODELS
        assert entry.title and entry.checked_in
        if entry.first != (0, 0, 0):
            assert entry.commit and entry.first_mainline, entry


def test_6_12_117_splits_clean_pmd_thps_the_pmd_discard_variant_would_not():
    """The real 6.12.117+ pmd-clean bundles (every arch) show the split; the 6.11 .. 6.12.116
    variant discards each THP whole, as the real 6.12.116 bundles and 7.0 .. 7.3.1 show."""
    from folio_replay.replay.models.unbatched import unmap

    pmd_clean = [p for p in lab_bundles() if p.name == "pmd-clean"]
    splitting = [p for p in pmd_clean if model_for_release(release_of(p)) == "unbatched"]
    discarding = [
        p
        for p in pmd_clean
        if model_for_release(release_of(p))
        in ("unbatched-pmd-discard", "batched", "batched-partial", "batched-file")
    ]
    assert splitting and discarding
    for path in splitting:
        state, folios = population(bundle(path).meta)
        assert observed(path, 2048)["thp_split_pmd"] == folios
    for path in discarding:
        state, folios = population(bundle(path).meta)
        variant = unmap(state, pmd_discard=True)
        assert variant.counters["thp_split_pmd"] == 0 and variant.rss_steps == [512]
        assert observed(path, 2048) == {
            counter: variant.counters[counter] * folios for counter, _ in COUNTERS
        }
    dirty = unmap(FolioState(512, pmd_mapped=True, dirty_page=0), pmd_discard=True)
    assert dirty.counters["thp_split_pmd"] == 1 and dirty.outcome == "kept"


def test_6_18_44_splits_lazyfree_pmd_thps_as_the_stable_fix_does():
    """This machine's 6.18.44 carries the stable "don't discard lazyfree THPs at PMD level": the
    host bundles pmd-clean and pmd-redirty (fixtures/host/make_host_kinds.sh, 16 THPs each)
    show thp_split_pmd +16 and fit batched-partial-pmd-split, not batched-partial (PMD
    discard); batched-partial-pmd-split differs from batched-file-pmd-split in its file
    folios, unmapped one PTE per step as on every 6.18."""
    from folio_replay.replay.recognise import recognise, signature_checks
    from folio_replay.replay.reconstruct import reconstruct

    for name, outcome in (("pmd-clean", "discarded"), ("pmd-redirty", "kept")):
        path = BUNDLES / "host" / "6.18.44-fc-v1300" / name
        recon = reconstruct(bundle(path).read_trace(), "x86_64")
        checks = signature_checks(recon, "x86")
        assert checks["batched-partial-pmd-split"] == Counter(match=1), name
        assert checks["batched-partial"] == Counter(mismatch=1), name
        model, why = recognise(bundle(path).meta, recon, "x86")
        assert model == "batched-partial-pmd-split" and "signatures agree" in why
        folios = recon.folios
        assert len(folios) == 16 and set(folios["outcome"]) == {outcome}
        assert bundle(path).stats_delta().query("counter == 'thp_split_pmd'")["delta"].sum() == 16
    clean = MODELS["batched-partial-pmd-split"].run(FolioState(512, pmd_mapped=True))
    assert clean.counters["thp_split_pmd"] == 1 and clean.rss_steps == [512]
    assert clean.counters["split_deferred"] == 0 and clean.outcome == "discarded"
    file_folio = FolioState(16, kind="file")
    assert MODELS["batched-partial-pmd-split"].run(file_folio).file_rss_steps == [1] * 16
    assert MODELS["batched-file-pmd-split"].run(file_folio).file_rss_steps == [16]


@pytest.mark.parametrize("model", list(MODELS))
def test_every_model_writes_a_swapped_folio_out_once_with_all_its_pages(model: str) -> None:
    """shrink_folio_list() -> pageout(): an unmapped swap-backed folio is written to its swap
    slot (one swap_write, a swap_write_page per page, whatever the unmap); a folio split for
    lack of a whole-folio slot is written page by page as order-0 folios; a lazyfree folio is
    never written."""
    run = MODELS[model].run
    for nr, pmd in ((16, False), (512, True)):
        ops = run(FolioState(nr, pmd_mapped=pmd, kind="swapbacked")).ops
        assert (ops["swap_write"], ops["swap_write_page"]) == (1, nr)
    fallback = run(FolioState(16, kind="swapbacked", swap_fallback=True))
    assert (fallback.ops["swap_write"], fallback.ops["swap_write_page"]) == (16, 16)
    assert fallback.counters["pswpout"] == 16
    lazy = run(FolioState(16)).ops
    assert lazy["swap_write"] == lazy["swap_write_page"] == 0


@pytest.mark.parametrize("model", list(MODELS))
def test_with_no_swap_device_every_model_splits_a_swap_backed_folio_and_keeps_its_pages(
    model: str,
) -> None:
    """folio_alloc_swap() fails for the folio and then for its first order-0 page
    (activate_locked_split): swpout_fallback and the split's deferred split, nothing written,
    no rss step; every PTE moved to a migration entry and flushed one by one, then restored."""
    for nr, pmd in ((16, False), (512, True)):
        state = FolioState(nr, pmd_mapped=pmd, kind="swapbacked", swap_fallback=True)
        result = MODELS[model].run(replace(state, no_swap=True))
        assert result.outcome == "kept"
        assert result.counters["swpout_fallback"] == result.counters["split_deferred"] == 1
        assert result.counters["thp_swpout_fallback"] == (1 if pmd else 0)
        assert result.counters["pswpout"] == result.counters["swpout"] == 0
        assert result.ops["swap_write"] == result.ops["swap_write_page"] == 0
        assert result.rss_steps == [] and result.swap_entries == 0
        assert result.ops["pte_write"] == 2 * nr  # migration entries, then the PTEs restored
        assert [f.pages for f in result.flushes if f.why == "try_to_unmap_one"] == [1] * nr
    with pytest.raises(ValueError, match="no_swap"):
        MODELS[model].run(FolioState(16, kind="swapbacked", no_swap=True))


def test_a_capture_without_swap_keeps_the_split_pages_of_its_swap_backed_folios() -> None:
    """fixtures/bundles/host/6.18.44-fc-v1300/noswap-pageout-anon: MADV_PAGEOUT of 256
    swap-backed 64 KiB folios with no swap device; the trace shows them kept, 4096 one-page
    flushes and no rss step; meta.json says there was no swap."""
    path = BUNDLES / "host/6.18.44-fc-v1300/noswap-pageout-anon"
    from folio_replay.replay.reconstruct import reconstruct

    loaded = load_bundle(path)
    assert loaded.no_swap_device
    recon = reconstruct(loaded.read_trace(), "x86_64", no_swap=True)
    assert recon.folios["outcome"].astype(str).tolist() == ["split_kept"] * 256
    assert not recon.folios["zapped_later"].any()
    assert (
        recon.signatures[0]["tlb_flush_pages"] == {1: 4096} and not recon.signatures[0]["rss_steps"]
    )
    # without the fact the same trace is read as kept folios the models would swap out
    plain = reconstruct(loaded.read_trace(), "x86_64")
    assert set(plain.folios["outcome"].astype(str)) == {"kept"}
    deltas = loaded.stats_delta().set_index(["size_kb", "counter"])["delta"]
    assert deltas[(64, "swpout_fallback")] == deltas[(64, "split_deferred")] == 256
    assert deltas[(64, "swpout")] == 0


def test_write_runs_cut_the_batches_of_models_that_respect_the_write_bit():
    """A 64 KiB lazyfree folio whose page 1 alone is writable (runs 0 | 1 | 2-15): since
    29f40594a281 folio_unmap_pte_batch() stops at each run (three batches, the first leaves the
    folio partially mapped: split_deferred +1); before it the write bit was ignored (one batch,
    no split); the per-PTE kernel queues it whatever its PTEs."""
    state = FolioState(nr_pages=16, run_starts=(1, 2))
    for model in ("batched-partial-respect-write", "batched-partial-pmd-split", "batched-file"):
        result = unmap(model, state)
        assert result.rss_steps == [1, 1, 14], model
        assert result.tlb_flush_pages == [1, 1, 14], model
        assert result.counters["split_deferred"] == 1, model
    for model in ("batched", "batched-partial"):
        result = unmap(model, state)
        assert result == unmap(model, FolioState(nr_pages=16)), model
        assert result.rss_steps == [16] and result.counters["split_deferred"] == 0
    assert unmap("unbatched", state) == unmap("unbatched", FolioState(nr_pages=16))


def test_a_redirtied_page_restores_only_its_own_run():
    """Dirty at page 5 inside the run 2-15: the runs 0 and 1 are discarded, the third batch
    sees the dirty PTE and is restored (outcome partial, folio set swap-backed); with one
    batch (write bit ignored) the whole folio is kept."""
    state = FolioState(nr_pages=16, run_starts=(1, 2), dirty_page=5)
    runs = unmap("batched-partial-respect-write", state)
    assert runs.outcome == "partial" and runs.rss_steps == [1, 1]
    assert runs.counters["split_deferred"] == 1
    whole = unmap("batched-partial", state)
    assert whole.outcome == "kept" and whole.rss_steps == []


@pytest.mark.parametrize("starts", [(0,), (16,), (2, 1), (3, 3)])
def test_write_runs_must_ascend_inside_the_folio(starts):
    with pytest.raises(ValueError, match="run_starts"):
        MODELS["batched-partial-respect-write"].run(FolioState(nr_pages=16, run_starts=starts))


def test_a_pmd_mapping_has_no_write_runs():
    with pytest.raises(ValueError, match="run_starts"):
        MODELS["batched-partial-pmd-split"].run(
            FolioState(nr_pages=512, pmd_mapped=True, run_starts=(1,))
        )
