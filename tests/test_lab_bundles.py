"""The lab bundles (fixtures/bundles/<arch>/<kernel-release>/<scenario>/, made by
fixtures/lab/lab.py):
each is complete, lost no events, and shows the stats deltas its kernel really produced.

The expected deltas are what the Debian kernels did under QEMU (fixtures/lab/README.md has the
table): the 6.12 kernels queue every 64 KiB lazyfree folio that reclaim unmaps page by page for
deferred split; 7.x (batched unmap since 354dffd29575, 6.15) queues none.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest
from folio_replay.parsers import load_bundle

BUNDLES = Path(__file__).resolve().parent.parent / "fixtures" / "bundles"
ARCHES = ("x86_64", "aarch64", "riscv64")
CAPTURED_ARCHES = ARCHES
SCENARIOS = (
    "microbench",
    "redirty-first-64k",
    "redirty-last-64k",
    "pmd-clean",
    "pmd-redirty",
    "partial-munmap",
    "mixed",
)
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
# 128 MiB of 64 KiB folios, 2 MiB folios, 4 KiB pages; the partial scenario unmaps one page per
# folio.
FOLIOS_64K, FOLIOS_2M, PAGES = 2048, 64, 32768
PARTIAL_PAGES = PAGES - FOLIOS_64K
# mixed: 130 MiB starting 1040 KiB past a 2 MiB boundary (folio_bench -o 1040) faults in as
# folio size (KiB) -> count: head 1008 KiB = 3 x 16 + 15 x 64, 64 x 2 MiB, tail 1040 KiB = 16 x 64
# + 1 x 16.
MIXED_FOLIOS = {16: 4, 64: 31, 2048: 64}
MIXED_PAGES = sum(size // 4 * n for size, n in MIXED_FOLIOS.items())  # 33280

# (series, scenario) -> {(counter, size_kb): delta}; size_kb 0 = /proc/vmstat.
# split_deferred/split are mTHP per-size counters; sizes not listed must stay 0.
EXPECTED: dict[tuple[str, str], dict[tuple[str, int], int]] = {
    ("6.12", "microbench"): {
        ("split_deferred", 64): FOLIOS_64K,
        ("pglazyfree", 0): PAGES,
        ("pglazyfreed", 0): PAGES,
        ("thp_split_pmd", 0): 0,
    },
    ("7", "microbench"): {
        ("split_deferred", 64): 0,
        ("pglazyfree", 0): PAGES,
        ("pglazyfreed", 0): PAGES,
        ("thp_split_pmd", 0): 0,
    },
    # The first page is dirty: 6.12 stops at it before unmapping any page, so nothing is queued.
    ("6.12", "redirty-first-64k"): {("split_deferred", 64): 0, ("pglazyfreed", 0): 0},
    ("7", "redirty-first-64k"): {("split_deferred", 64): 0, ("pglazyfreed", 0): 0},
    # The last page is dirty: 6.12 has unmapped 15 pages when it meets it, and queues the folio.
    ("6.12", "redirty-last-64k"): {("split_deferred", 64): FOLIOS_64K, ("pglazyfreed", 0): 0},
    ("7", "redirty-last-64k"): {("split_deferred", 64): 0, ("pglazyfreed", 0): 0},
    # 6.12 splits each clean lazyfree PMD THP under MADV_PAGEOUT and queues it (see README).
    ("6.12", "pmd-clean"): {
        ("thp_split_pmd", 0): FOLIOS_2M,
        ("split_deferred", 2048): FOLIOS_2M,
        ("thp_deferred_split_page", 0): FOLIOS_2M,
        ("pglazyfreed", 0): PAGES,
    },
    ("7", "pmd-clean"): {
        ("thp_split_pmd", 0): 0,
        ("split_deferred", 2048): 0,
        ("thp_deferred_split_page", 0): 0,
        ("pglazyfreed", 0): PAGES,
    },
    ("6.12", "pmd-redirty"): {
        ("thp_split_pmd", 0): FOLIOS_2M,
        ("split_deferred", 2048): 0,
        ("pglazyfreed", 0): 0,
    },
    ("7", "pmd-redirty"): {
        ("thp_split_pmd", 0): 0,
        ("split_deferred", 2048): 0,
        ("pglazyfreed", 0): 0,
    },
    # Genuine partial unmaps queue (and reclaim then splits) every folio on both kernels.
    ("6.12", "partial-munmap"): {
        ("split_deferred", 64): FOLIOS_64K,
        ("split", 64): FOLIOS_64K,
        ("pglazyfree", 0): PARTIAL_PAGES,
        ("pglazyfreed", 0): PARTIAL_PAGES,
    },
    ("7", "partial-munmap"): {
        ("split_deferred", 64): FOLIOS_64K,
        ("split", 64): FOLIOS_64K,
        ("pglazyfree", 0): PARTIAL_PAGES,
        ("pglazyfreed", 0): PARTIAL_PAGES,
    },
    # 6.12 queues every mixed-size folio once (the PMD THPs after splitting them), 7.x none.
    ("6.12", "mixed"): {
        ("thp_split_pmd", 0): MIXED_FOLIOS[2048],
        ("thp_deferred_split_page", 0): MIXED_FOLIOS[2048],
        **{("split_deferred", size): n for size, n in MIXED_FOLIOS.items()},
        ("pglazyfree", 0): MIXED_PAGES,
        ("pglazyfreed", 0): MIXED_PAGES,
    },
    ("7", "mixed"): {
        ("thp_split_pmd", 0): 0,
        ("thp_deferred_split_page", 0): 0,
        **{("split_deferred", size): 0 for size in MIXED_FOLIOS},
        ("pglazyfree", 0): MIXED_PAGES,
        ("pglazyfreed", 0): MIXED_PAGES,
    },
}

# Where an arch's kernel did otherwise (fixtures/lab/README.md, "What the kernels did").
ARCH_EXPECTED: dict[tuple[str, str, str], dict[tuple[str, int], int]] = {
    # arm64 contpte: clearing the first PTE of a 64 KiB block unfolds it, and the unfold gathers
    # the block's dirty bits into every PTE, so 6.12 meets a dirty PTE at once and queues nothing.
    ("aarch64", "6.12", "redirty-last-64k"): {("split_deferred", 64): 0, ("pglazyfreed", 0): 0},
    # arm64 6.12 splits each redirtied PMD THP in reclaim like x86, but also queues it: not in
    # reclaim (no rss_stat step there) but at the final munmap of the now PTE-mapped folios.
    ("aarch64", "6.12", "pmd-redirty"): {
        ("thp_split_pmd", 0): FOLIOS_2M,
        ("split_deferred", 2048): FOLIOS_2M,
        ("thp_deferred_split_page", 0): FOLIOS_2M,
        ("pglazyfreed", 0): 0,
    },
}


def expected_deltas(arch: str, release: str, scenario: str) -> dict[tuple[str, int], int]:
    key = (arch, series(release), scenario)
    return ARCH_EXPECTED.get(key) or EXPECTED[key[1:]]


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
    """Both kernels of each captured arch, every scenario (issue 2 §3, issue 5)."""
    releases = sorted(p.name for p in (BUNDLES / arch).iterdir())
    assert [series(r) for r in releases] == ["6.12", "7"]
    for release in releases:
        assert sorted(p.name for p in (BUNDLES / arch / release).iterdir()) == sorted(SCENARIOS)


@pytest.mark.parametrize("rel", BUNDLE_IDS)
def test_meta(rel: str):
    path = BUNDLES / rel
    meta = json.loads((path / "meta.json").read_text())
    arch, release, scenario = Path(rel).parts
    for field in META_FIELDS:
        assert field in meta, field
    assert meta["arch"] == arch and meta["scenario"] == scenario and meta["name"] == rel
    assert meta["kernel"].startswith(f"Linux version {release} ")
    assert meta["command"][0] == "folio_bench" and meta["workload_exit_status"] == 0
    assert re.fullmatch(
        r"run=0 mode=\w+ size=\d+ free_ns=\d+ pageout_ns=\d+", meta["workload_stdout"]
    )
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


@pytest.mark.parametrize("rel", BUNDLE_IDS)
def test_stats_deltas(rel: str):
    arch, release, scenario = Path(rel).parts
    bundle = load_bundle(BUNDLES / rel)
    expected = expected_deltas(arch, release, scenario)
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
    assert orders == {(size // 4).bit_length() - 1: n for size, n in MIXED_FOLIOS.items()}
