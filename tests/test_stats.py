"""Stats trees of every real bundle as tidy tables, their deltas, and the kernels' own counts."""

from __future__ import annotations

from pathlib import Path

import pytest
from folio_replay.parsers import load_bundle
from folio_replay.parsers.stats import read_settings, read_stats
from parse_fixtures import BUNDLES

BUNDLE_DIRS = sorted(p.parent for p in BUNDLES.glob("**/meta.json"))
IDS = [str(p.relative_to(BUNDLES)) for p in BUNDLE_DIRS]

# split_deferred per folio size (KiB) over each real 128 MiB run, as the captured kernels
# counted it: 6.12.117 queues every PTE-mapped lazyfree folio it unmaps for deferred split (2048
# per 128 MiB of 64 KiB folios, as in the 354dffd29575 changelog), 6.18 and 7.2 batch the unmap
# and queue none. A genuine partial unmap is queued on every kernel. (Other arches, releases
# and scenarios: tests/test_lab_bundles.py, from the release table.)
SPLIT_DEFERRED = {
    ("x86_64", "6.12.117", "microbench"): {64: 2048},
    ("x86_64", "6.12.117", "partial-munmap"): {64: 2048},
    ("x86_64", "6.12.117", "redirty-first-64k"): {},
    ("x86_64", "6.12.117", "redirty-last-64k"): {64: 2048},
    ("x86_64", "6.12.117", "pmd-clean"): {2048: 64},
    ("x86_64", "6.12.117", "pmd-redirty"): {},
    ("x86_64", "6.12.117", "mixed"): {16: 4, 64: 31, 2048: 64},
    ("x86_64", "7.2.13", "microbench"): {},
    ("x86_64", "7.2.13", "partial-munmap"): {64: 2048},
    ("x86_64", "7.2.13", "redirty-first-64k"): {},
    ("x86_64", "7.2.13", "redirty-last-64k"): {},
    ("x86_64", "7.2.13", "pmd-clean"): {},
    ("x86_64", "7.2.13", "pmd-redirty"): {},
    ("x86_64", "7.2.13", "mixed"): {},
    ("host", "6.18.44", "microbench"): {},
    ("host", "6.18.44", "redirty-last-64k"): {},
}


def _key(bundle: Path) -> tuple[str, str, str]:
    """(arch directory, release number, scenario) of a bundle path."""
    release = bundle.parent.name
    return bundle.parent.parent.name, release.split("+")[0].split("-")[0], bundle.name


@pytest.fixture(scope="module", params=BUNDLE_DIRS, ids=IDS)
def bundle(request):
    return load_bundle(request.param)


def _plain_rows(tree: Path, path: Path) -> dict[tuple[str, str], int]:
    """The numbers of one stats file by a plain reading of its kernel format."""
    rel, text = path.relative_to(tree).as_posix(), path.read_text()
    lists = {
        "vmstat": "vmstat",
        "memcg/memory.stat": "memcg",
        "memcg/memory.events": "memcg_events",
    }
    if rel in lists:
        return {(lists[rel], line.split()[0]): int(line.split()[1]) for line in text.splitlines()}
    if rel == "meminfo":  # "MemTotal:   2014996 kB"
        return {
            ("meminfo", line.split(":")[0]): int(line.split(":")[1].split()[0])
            for line in text.splitlines()
        }
    if rel.startswith("zram/"):  # one line of numbers, a counter per column
        return {("zram", f"{rel}#{i}"): int(v) for i, v in enumerate(text.split())}
    if rel in ("swaps", "lru_gen_enabled") or not text.strip().lstrip("-").isdigit():
        return {}  # text (a table, a mask, "max", [choice]s): settings
    return {("sysfs", rel): int(text)}


def test_tidy_rows_are_the_files_numbers(bundle):
    """Every number in the tree is one row, with its value (read back by a plain walk)."""
    for side, table in (("before", bundle.stats_before), ("after", bundle.stats_after)):
        tree = bundle.path / "stats" / side
        expected = {}
        for path in tree.rglob("*"):
            if path.is_file():
                expected.update(_plain_rows(tree, path))
        zram = {name: i for f in tree.glob("zram/*") for i, name in enumerate(ZRAM[f.name])}
        zram_file = {name: f.name for f in tree.glob("zram/*") for name in ZRAM[f.name]}
        got = {}
        for row in table.itertuples():
            if row.source in ("vmstat", "memcg", "memcg_events", "meminfo"):
                got[(row.source, row.counter)] = row.value
            elif row.source == "zram":
                got[("zram", f"zram/{zram_file[row.counter]}#{zram[row.counter]}")] = row.value
            elif row.source == "mthp":
                got[("sysfs", f"hugepages-{row.size_kb}kB/stats/{row.counter}")] = row.value
            else:
                got[("sysfs", row.counter)] = row.value
        assert got == expected
        assert len(table) == len(expected)


def test_settings_are_the_bracketed_choices(bundle):
    tree = bundle.path / "stats" / "before"
    settings = read_settings(tree)
    assert settings["enabled"] in {"always", "madvise", "never"}
    thp = bundle.meta.get("thp")
    if thp:  # lab bundles record what they set
        assert settings["enabled"] == thp["enabled"]
        for size, choice in thp["sizes"].items():
            assert settings[f"hugepages-{size}kB/enabled"] == choice


def test_deltas_are_after_minus_before(bundle):
    delta = bundle.stats_delta()
    before = read_stats(bundle.path / "stats" / "before").set_index(
        ["source", "size_kb", "counter"]
    )
    after = read_stats(bundle.path / "stats" / "after").set_index(["source", "size_kb", "counter"])
    for row in delta.itertuples():
        key = (row.source, row.size_kb, row.counter)
        assert row.before == before.loc[key, "value"] and row.after == after.loc[key, "value"]
        assert row.delta == row.after - row.before


# zram's stat files, column by column (Documentation/admin-guide/blockdev/zram.rst)
ZRAM = {
    "mm_stat": (
        "orig_data_size",
        "compr_data_size",
        "mem_used_total",
        "mem_limit",
        "mem_used_max",
        "same_pages",
        "pages_compacted",
        "huge_pages",
        "huge_pages_since",
    ),
    "io_stat": ("failed_reads", "failed_writes", "invalid_io", "notify_free"),
    "bd_stat": ("bd_count", "bd_reads", "bd_writes"),
}

EXPECTED_DIRS = [p for p in BUNDLE_DIRS if _key(p) in SPLIT_DEFERRED]


def test_every_expectation_has_its_bundle():
    assert set(SPLIT_DEFERRED) == {_key(p) for p in EXPECTED_DIRS}


@pytest.mark.parametrize(
    "path", EXPECTED_DIRS, ids=[str(p.relative_to(BUNDLES)) for p in EXPECTED_DIRS]
)
def test_split_deferred_as_the_kernel_counted(path):
    delta = load_bundle(path).stats_delta()
    rows = delta[
        (delta["source"] == "mthp") & (delta["counter"] == "split_deferred") & (delta["delta"] != 0)
    ]
    assert dict(zip(rows["size_kb"], rows["delta"])) == SPLIT_DEFERRED[_key(path)]


def test_pglazyfree_matches_the_traced_madv_free(bundle):
    """vmstat pglazyfree grows by the pages MADV_FREE covered: the madvise length in the trace,
    less the pages the workload munmapped inside it before (the partial scenario). For the
    bundles of one folio_bench run (the others have several MADV_FREE callers, or none)."""
    command = bundle.meta.get("command", [])
    runs = command[command.index("-r") + 1] if "-r" in command else "1"
    if not command or not command[0].endswith("folio_bench") or runs != "1":
        pytest.skip("not one folio_bench run")
    mode = command[command.index("-m") + 1] if "-m" in command else "clean"
    if mode not in ("clean", "redirty", "partial", "mixed-kinds"):
        pytest.skip(f"folio_bench -m {mode} makes no MADV_FREE")
    delta = bundle.stats_delta()
    pglazyfree = delta.loc[
        (delta["source"] == "vmstat") & (delta["counter"] == "pglazyfree"), "delta"
    ].item()
    df = bundle.read_trace().to_pandas()
    bench = df[df["comm"] == "folio_bench"]
    free = bench[
        (bench["event"] == "sys_enter_madvise") & (bench["madvise.behavior"] == "MADV_FREE")
    ]
    assert len(free) == 1
    start, length, ts = (int(free[c].iloc[0]) for c in ("madvise.start", "madvise.len", "ts_ns"))
    unmaps = bench[
        (bench["event"] == "sys_enter_munmap")
        & (bench["ts_ns"] < ts)
        & (bench["munmap.addr"] >= start)
        & (bench["munmap.addr"] < start + length)
    ]
    holes = int(unmaps["munmap.len"].sum())
    assert pglazyfree == (length - holes) // 4096 > 0
