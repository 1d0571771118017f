"""The lab bundles (fixtures/bundles/<arch>/<kernel-release>/<scenario>/, made by
fixtures/lab/lab.py):
each is complete, lost no events, and shows the stats deltas its kernel really produced.

The expected deltas follow from each release's range of replay/releases.toml (see
expected_deltas; fixtures/lab/README.md has the table of what the Debian kernels did under
QEMU): the 6.12 kernels queue every 64 KiB lazyfree folio that reclaim unmaps page by page for
deferred split; 7.x (batched unmap since 354dffd29575, 6.15) queues none; the PMD THPs differ
per release.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest
from folio_replay.parsers import load_bundle
from folio_replay.replay.releases import model_for_release
from parse_fixtures import FIRST_LAB_SCENARIOS, region_kb

BUNDLES = Path(__file__).resolve().parent.parent / "fixtures" / "bundles"
ARCHES = ("x86_64", "aarch64", "riscv64")
CAPTURED_ARCHES = ARCHES
SCENARIOS = FIRST_LAB_SCENARIOS
META_FIELDS = (
    "name",
    "scenario",
    "kernel",
    "kernel_release",
    "arch",
    "command",
    "thp",
    "events_enabled",
    "events_missing",
    "lost_events",
    "workload_stdout",
    "workload_timing_ns",
    "packages",
    "qemu_command",
    "made_by",
)


def mixed_folios(region: int) -> dict[int, int]:
    """mixed: the region starts 1040 KiB past a 2 MiB boundary (folio_bench -o 1040) and faults
    in as folio size (KiB) -> count: head 1008 KiB = 3 x 16 + 15 x 64, then 2 MiB folios, tail
    1040 KiB = 16 x 64 + 1 x 16."""
    return {16: 4, 64: 31, 2048: (region - 2048) // 2048}


def expected_deltas(arch: str, release: str, scenario: str, meta: dict) -> dict:
    """{(counter, size_kb): delta} the kernel of ``release`` gives ``scenario`` (size_kb 0 =
    /proc/vmstat); split_deferred/split sizes not listed must stay 0. From the kernel source of
    each range of replay/releases.toml (README "Release boundaries"):

    * 64 KiB lazyfree folios: unmapped a PTE at a time before 6.15, so each is queued for
      deferred split after its first page; batched whole since (354dffd29575, ddd05742b45b);
    * a clean lazyfree PMD THP under MADV_PAGEOUT: split at the PMD (thp_split_pmd) and queued
      on 6.12.117+ ("mm/rmap: don't discard lazyfree THPs at PMD level"); discarded whole on
      6.12.116 (735ecdfaf4e8) and 7.0-7.3.1; split and then unmapped in one 512-PTE batch
      (not queued) on 7.3.2+;
    * a redirtied PMD THP: split on 6.12.x and 7.3.2+, kept whole on 7.0-7.3.1;
    * genuine partial unmaps are queued on every kernel.
    """
    region = region_kb(meta)
    n64, n2m, pages = region // 64, region // 2048, region // 4
    model = model_for_release(release)
    per_pte = model.startswith("unbatched")
    pmd_split = model in ("unbatched", "batched-file-pmd-split")  # clean lazyfree PMD
    pmd_queued = model == "unbatched"
    redirty_split = model.startswith("unbatched") or model == "batched-file-pmd-split"
    if scenario in ("microbench", "pageout-call-64k"):  # pageout-call-64k: one folio
        return {
            ("split_deferred", 64): n64 if per_pte else 0,
            ("pglazyfree", 0): pages,
            ("pglazyfreed", 0): pages,
            ("thp_split_pmd", 0): 0,
        }
    if scenario == "redirty-first-64k":
        # the first page is dirty: the per-PTE walk stops before unmapping any page
        return {("split_deferred", 64): 0, ("pglazyfreed", 0): 0}
    if scenario == "redirty-last-64k":
        # 15 pages unmapped when the walk meets the dirty last one; arm64 contpte: clearing
        # the first PTE of a 64 KiB block unfolds it and the unfold gathers the block's dirty
        # bits into every PTE, so the walk meets a dirty PTE at once and queues nothing
        queued = per_pte and arch != "aarch64"
        return {("split_deferred", 64): n64 if queued else 0, ("pglazyfreed", 0): 0}
    if scenario == "pmd-clean":
        return {
            ("thp_split_pmd", 0): n2m if pmd_split else 0,
            ("split_deferred", 2048): n2m if pmd_queued else 0,
            ("thp_deferred_split_page", 0): n2m if pmd_queued else 0,
            ("pglazyfreed", 0): pages,
        }
    if scenario == "pmd-redirty":
        # arm64 6.12 also queues each split folio, not in reclaim but at the final munmap of
        # the now PTE-mapped folio (its zap meets mixed contpte blocks)
        queued = n2m if arch == "aarch64" and per_pte else 0
        return {
            ("thp_split_pmd", 0): n2m if redirty_split else 0,
            ("split_deferred", 2048): queued,
            ("thp_deferred_split_page", 0): queued,
            ("pglazyfreed", 0): 0,
        }
    if scenario == "partial-munmap":
        return {
            ("split_deferred", 64): n64,
            ("split", 64): n64,
            ("pglazyfree", 0): pages - n64,
            ("pglazyfreed", 0): pages - n64,
        }
    if scenario == "mixed":
        folios = mixed_folios(region)
        mixed_pages = sum(size // 4 * n for size, n in folios.items())
        return {
            ("thp_split_pmd", 0): folios[2048] if pmd_split else 0,
            ("thp_deferred_split_page", 0): folios[2048] if pmd_queued else 0,
            ("split_deferred", 16): folios[16] if per_pte else 0,
            ("split_deferred", 64): folios[64] if per_pte else 0,
            ("split_deferred", 2048): folios[2048] if pmd_queued else 0,
            ("pglazyfree", 0): mixed_pages,
            ("pglazyfreed", 0): mixed_pages,
        }
    raise KeyError(scenario)


def bundle_dirs() -> list[Path]:
    return sorted(p for arch in ARCHES for p in (BUNDLES / arch).glob("*/*") if p.is_dir())


def series(release: str) -> str:
    return "6.12" if release.startswith("6.12.") else release.split(".")[0]


def delta_of(bundle, counter: str, size_kb: int) -> int:
    d = bundle.stats_delta()
    source = "vmstat" if size_kb == 0 else "mthp"
    row = d[(d.source == source) & (d.counter == counter) & (d.size_kb == size_kb)]
    assert len(row) == 1, f"{counter} size {size_kb}: {len(row)} rows"
    return int(row.delta.iloc[0])


BUNDLE_IDS = [str(p.relative_to(BUNDLES)) for p in bundle_dirs()]


@pytest.mark.parametrize("arch", CAPTURED_ARCHES)
def test_lab_is_complete(arch: str):
    """Each captured arch has a 6.12 and a 7.x kernel with every scenario of the first lab runs
    (issue 2 §3, issue 5); later runs add releases and scenarios."""
    complete = {
        series(p.name)
        for p in (BUNDLES / arch).iterdir()
        if set(SCENARIOS) <= {q.name for q in p.iterdir()}
    }
    assert complete == {"6.12", "7"}


@pytest.mark.parametrize("rel", BUNDLE_IDS)
def test_meta(rel: str):
    path = BUNDLES / rel
    meta = json.loads((path / "meta.json").read_text())
    arch, release, scenario = Path(rel).parts
    for field in META_FIELDS:
        assert field in meta, field
    assert meta["arch"] == arch and meta["scenario"] == scenario and meta["name"] == rel
    assert meta["kernel"].startswith(f"Linux version {release} ")
    assert meta["workload_exit_status"] == 0
    if meta["command"][0] == "folio_bench":
        assert re.match(
            r"run=0 mode=[\w-]+ size=\d+ free_ns=\d+ pageout_ns=\d+", meta["workload_stdout"]
        )
    else:  # Go's runtime (fixtures/host/workloads/go_churn), steps timed in ms
        assert meta["command"][:3] == ["env", "GODEBUG=madvdontneed=0", "go_churn"]
        assert re.match(r"step=fill ms=[\d.]+\n", meta["workload_stdout"])
    assert meta["packages"]["kernel"].startswith(f"linux-image-{release}=")
    assert meta["made_by"]["script"] == "fixtures/lab/lab.py"
    assert not load_bundle(path).missing


@pytest.mark.parametrize("rel", BUNDLE_IDS)
def test_no_lost_events(rel: str):
    path = BUNDLES / rel
    meta = json.loads((path / "meta.json").read_text())
    assert meta["lost_events"] == {"ring_buffer_overrun": 0, "trace_lost_markers": 0}
    with gzip.open(path / "trace.txt.gz", "rt") as f:
        text = f.read()
    header = re.search(r"entries-in-buffer/entries-written: (\d+)/(\d+)", text)
    assert header and header.group(1) == header.group(2)
    assert int(header.group(1)) == sum(1 for line in text.splitlines() if line and line[0] != "#")
    assert "LOST" not in text


@pytest.mark.parametrize(
    "rel", [r for r in BUNDLE_IDS if Path(r).name in (*SCENARIOS, "pageout-call-64k")]
)
def test_stats_deltas(rel: str):
    arch, release, scenario = Path(rel).parts
    bundle = load_bundle(BUNDLES / rel)
    expected = expected_deltas(arch, release, scenario, bundle.meta)
    for (counter, size_kb), value in expected.items():
        assert delta_of(bundle, counter, size_kb) == value, (counter, size_kb)
    # No other size queued or split anything.
    d = bundle.stats_delta()
    for counter in ("split_deferred", "split"):
        moved = d[(d.source == "mthp") & (d.counter == counter) & (d.delta != 0)]
        named = {s for (c, s) in expected if c == counter}
        assert set(moved.size_kb) <= named, (counter, sorted(moved.size_kb))


@pytest.mark.parametrize("rel", [r for r in BUNDLE_IDS if r.endswith("/mixed")])
def test_mixed_faults_mix_folio_sizes(rel: str):
    """mixed: the THP allocations between the workload's last set-up munmap and its MADV_FREE
    (the memset that faults the region in) are 4 x order 2, 31 x order 4 and 64 x order 9."""
    events = load_bundle(BUNDLES / rel).read_trace().to_pandas()
    workload = events[events["comm"] == "folio_bench"]
    start = workload[workload["event"] == "sys_exit_munmap"]["line"].iloc[1]  # head, tail slack
    end = workload[
        (workload["event"] == "sys_enter_madvise") & (workload["madvise.behavior"] == "MADV_FREE")
    ]["line"].iloc[0]
    faults = workload[
        (workload["event"] == "mm_page_alloc")
        & workload["line"].between(start, end)
        & workload["page.gfp_flags"].str.contains("GFP_TRANSHUGE")
    ]
    orders = faults["page.order"].value_counts().to_dict()
    folios = mixed_folios(region_kb(load_bundle(BUNDLES / rel).meta))
    assert orders == {(size // 4).bit_length() - 1: n for size, n in folios.items()}
