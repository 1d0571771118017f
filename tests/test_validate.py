"""validate on every real bundle in fixtures/: the captured kernel's counters and cross-kernel."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from folio_replay.replay.analysis import Analysis, analyse
from folio_replay.replay.timing import speedups
from folio_replay.replay.validate import attribution
from parse_fixtures import BUNDLE_DIRS as ALL
from parse_fixtures import BUNDLES
from parse_fixtures import bundle_ids as ids


@cache
def analysis_of(path: Path) -> Analysis:
    """The analysis of one bundle, priced on its own arch only (cached: seconds each)."""
    return analyse(path, archs=[])


def pairs() -> list[tuple[Path, Path]]:
    """(older, newer) captures of the same arch and scenario on two kernels."""
    by_key: dict[tuple[str, str], list[Path]] = {}
    for path in ALL:
        by_key.setdefault((path.parent.parent.name, path.name), []).append(path)
    return [
        tuple(sorted(paths, key=lambda p: p.parent.name)[:2])  # type: ignore[misc]
        for paths in by_key.values()
        if len(paths) >= 2 and paths[0].parent.parent.name != "host"
    ]


PAIRS = pairs()


@pytest.mark.parametrize("path", ALL, ids=ids(ALL))
def test_captured_model_matches_every_counter(path: Path) -> None:
    analysis = analysis_of(path)
    validation = analysis.validation()
    assert len(validation) >= 4  # split_deferred per size + the vmstat counters
    # lab guests run nothing else: every counter matches; the host's counters are system-wide,
    # so activity outside the trace may explain a difference, never hide a mismatch
    strict = path.relative_to(BUNDLES).parts[0] != "host"
    bad = validation[~validation["match"]] if strict else validation[
        validation["verdict"] == "mismatch"]
    assert bad.empty, bad.to_string()
    assert (validation["verdict"] == "match").equals(validation["match"].astype(bool))


def directed() -> list:
    """(capture, other) for both directions of every pair."""
    return [
        pytest.param(capture, other, id=f"{capture.relative_to(BUNDLES)}->{other.parent.name}")
        for old, new in PAIRS
        for capture, other in ((old, new), (new, old))
    ]


@pytest.mark.parametrize("capture,other", directed())
def test_cross_kernel_each_capture_predicts_the_other(capture: Path, other: Path) -> None:
    first, second = analysis_of(capture), analysis_of(other)
    assert first.model != second.model
    validation = first.validation(second.model, second.deltas(), "cross-kernel")
    bad = validation[~validation["match"]]
    assert bad.empty, bad.to_string()


@pytest.mark.parametrize(
    "old,new",
    [p for p in PAIRS if p[0].name == "microbench"],
    ids=[a.parent.parent.name for a, _ in PAIRS if a.name == "microbench"],
)
def test_microbench_2048_to_0_split_deferred_and_the_speedup_error_is_reported(
    old: Path, new: Path
) -> None:
    first, second = analysis_of(old), analysis_of(new)
    for capture, observed in ((first, 2048), (second, 0)):
        row = capture.validation().query("counter == 'split_deferred' and size_kb == 64")
        assert row["observed"].item() == observed
        assert row["predicted_low"].item() == row["predicted_high"].item() == observed
    cross = first.validation(second.model, second.deltas(), "cross-kernel")
    assert (
        cross.query("counter == 'split_deferred' and size_kb == 64")["predicted_high"].item() == 0
    )
    table = speedups(first, second)
    assert len(table) == 2 and table["measured"].gt(1).all()  # 7.x reclaims faster, as measured
    assert table["error"].notna().all()
    print(table.to_string(index=False))


@pytest.mark.parametrize(
    "path",
    [p for p in ALL if p.name == "partial-munmap"],
    ids=ids([p for p in ALL if p.name == "partial-munmap"]),
)
def test_partial_munmap_split_deferred_is_attributed_to_genuine_partial_unmaps(path: Path) -> None:
    shares = attribution(analysis_of(path).validation())
    row = shares[shares["size_kb"] == 64]
    assert row["observed"].item() == 2048
    assert row["partial_low"].item() == row["partial_high"].item() == 2048
    assert row["reclaim_high"].item() == 0


@pytest.mark.parametrize(
    "old,new",
    [p for p in PAIRS if p[0].name == "microbench"],
    ids=[a.parent.parent.name for a, _ in PAIRS if a.name == "microbench"],
)
def test_validate_command_cross_kernel_exit_0_with_speedup_and_emulation_note(
    old: Path, new: Path, cli
) -> None:

    result = cli("validate", old, "--against", new)
    assert result.exit_code == 0, result.output
    assert "cross-kernel" in result.output and "speedup" in result.output
    assert "QEMU TCG emulation timings" in result.output
    assert result.output.rstrip().endswith("counters match")


@pytest.mark.parametrize(
    "path",
    [p for p in ALL if p.name == "pmd-redirty"],
    ids=ids([p for p in ALL if p.name == "pmd-redirty"]),
)
def test_pmd_redirty_later_zap_counters_are_counted_only_where_the_kernel_moved_them(
    path: Path,
) -> None:
    analysis = analysis_of(path)
    row = analysis.validation().query("counter == 'split_deferred' and size_kb == 2048")
    folios = analysis.recon.folios
    assert folios["zapped_later"].all()  # munmap freed every kept folio after MADV_PAGEOUT
    # arm64 6.12 splits the PMD, then its zap meets mixed contpte blocks: +1 per folio there.
    expected = 64 if analysis.arch == "arm64" and analysis.model == "unbatched" else 0
    assert row["observed"].item() == expected == row["predicted_low"].item()


def test_bundle_without_stats_replays_but_cannot_validate(tmp_path: Path) -> None:
    import shutil

    from click.testing import CliRunner

    from folio_replay.cli import main

    source = ALL[0]
    bundle = tmp_path / "no-stats"
    shutil.copytree(source, bundle, ignore=shutil.ignore_patterns("stats"))
    result = CliRunner().invoke(main, ["validate", str(bundle)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith(f"folio-replay: error: {bundle}")
    assert "Traceback" not in result.output
    report = CliRunner().invoke(main, ["replay", str(bundle), "-o", str(tmp_path / "r")])
    assert report.exit_code == 0, report.output
    import pandas as pd

    assert pd.read_parquet(tmp_path / "r" / "validation.parquet").empty
    assert not pd.read_parquet(tmp_path / "r" / "predictions.parquet").empty
