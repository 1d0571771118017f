"""The replay command's answer, on real lab and host bundles: first lines, tables, formats."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from click.testing import CliRunner
from report_models import other_models

from folio_replay.cli import main
from folio_replay.present.replay import summary
from folio_replay.present.report import load_report
from folio_replay.present.tables import render

BUNDLES = Path(__file__).resolve().parent.parent / "fixtures" / "bundles"
README_BUNDLE = BUNDLES / "x86_64" / "6.12.117+deb13-cloud-amd64" / "microbench"
MIXED_ARM64 = BUNDLES / "aarch64" / "6.12.117+deb13-cloud-arm64" / "mixed"
PARTIAL = BUNDLES / "x86_64" / "6.12.117+deb13-cloud-amd64" / "partial-munmap"
HOST = BUNDLES / "host" / "6.18.44-fc-v669" / "microbench"


def replay(bundle: Path, target: Path, *options: str) -> str:
    result = CliRunner().invoke(main, ["replay", str(bundle), "-o", str(target), *options])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def readme(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The README's main job: its report and its text output."""
    target = tmp_path_factory.mktemp("readme") / "report"
    return target, replay(README_BUNDLE, target)


def counters(report: Path) -> str:
    """``matched/all`` of the report's validation (all match on these bundles)."""
    validation = pd.read_parquet(report / "validation.parquet")
    assert validation["match"].all()
    return f"{len(validation)}/{len(validation)}"


def speedup(report: Path, arch: str, model: str) -> tuple[float, float, float]:
    """(unbatched ms, model ms, speedup) summed from the report's predictions with duckdb."""
    rows = dict(
        duckdb.sql(
            f"select model, sum(time_ns) from '{report / 'predictions.parquet'}' "
            f"where arch = '{arch}' group by model"
        ).fetchall()
    )
    return rows["unbatched"] / 1e6, rows[model] / 1e6, rows["unbatched"] / rows[model]


def test_the_main_job_prints_the_answer_in_its_first_lines(readme) -> None:
    report, output = readme
    lines = output.splitlines()
    assert lines[0].startswith(f"{README_BUNDLE}: 6.12.117+deb13-cloud-amd64 (x86, QEMU TCG)")
    assert "captured kernel runs unbatched; 1 reclaim episode, 2048 large-folio unmaps" in lines[0]
    # the kernel's own counter (stats delta) and what the batched models predict
    models = ", ".join(other_models(report))  # batched, batched-partial, ...: all remove them
    assert lines[1] == f"split_deferred, captured kernel → {models}: 64K 2048 → 0"
    assert lines[2].startswith(f"predicted reclaim time, unbatched → {models}: ")
    for arch in ("x86", "arm64", "riscv"):
        before, after, ratio = speedup(report, arch, "batched-partial")
        assert f"{arch} {before:#.3g} ms → {after:#.3g} ms ({ratio:.2f}×)" in lines[2]
    assert lines[3] == f"validation (unbatched): {counters(report)} counters match"
    assert output.rstrip().endswith(f"report: {report}")
    assert "\x1b[" not in output  # piped: plain text, no colour


def test_text_tables_hold_the_split_deferred_and_times_per_arch(readme) -> None:
    report, output = readme
    others = other_models(report)
    lines = output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("size "))
    assert lines[header].split() == [
        "size", "folios", "observed", "unbatched", "(captured)", *" ".join(others).split()
    ]  # fmt: skip
    assert lines[header + 2].split() == ["64K", "2048", "2048", "2048", *["0"] * len(others)]
    times = next(i for i, line in enumerate(lines) if line.startswith("arch "))
    before, after, ratio = speedup(report, "x86", others[-1].removesuffix(" (what-if)"))
    assert lines[times + 2].split()[:3] == ["x86", f"{before:#.3g}", "ms"]
    assert lines[times + 2].split()[-3:] == [f"{after:#.3g}", "ms", f"({ratio:.2f}×)"]
    assert "- times: QEMU TCG emulation timings; the measured MADV_PAGEOUT (96.0 ms)" in output


def markdown_table(output: str, first_header: str) -> list[list[str]]:
    """The cells of the Markdown pipe table whose header starts with ``first_header``."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} "))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return [rows[0], *rows[2:]]  # without the |---| rule


def test_markdown_is_pipe_tables_for_a_cover_letter(tmp_path: Path) -> None:
    output = replay(README_BUNDLE, tmp_path / "r", "--format", "markdown")
    others = other_models(tmp_path / "r")
    assert output.startswith(f"- {README_BUNDLE}: 6.12.117+deb13-cloud-amd64")
    assert f"- split_deferred, captured kernel → {', '.join(others)}: 64K 2048 → 0\n" in output
    assert markdown_table(output, "size") == [
        ["size", "folios", "observed", "unbatched (captured)", *others],
        ["64K", "2048", "2048", "2048", *["0"] * len(others)],
    ]
    times = markdown_table(output, "arch")
    assert times[0] == ["arch", "unbatched (captured)", *others]
    by_arch = {row[0]: dict(zip(times[0], row)) for row in times[1:]}
    assert list(by_arch) == ["x86", "arm64", "riscv"]  # the captured arch first
    for arch in ("x86", "arm64", "riscv"):
        before, after, ratio = speedup(tmp_path / "r", arch, "batched")
        assert by_arch[arch]["unbatched (captured)"] == f"{before:#.3g} ms"
        expected = f"{after:#.3g} ms ({ratio:.2f}×)"
        assert by_arch[arch]["batched"] == by_arch[arch]["batched-partial"] == expected
    assert "**notes**" in output and "\x1b[" not in output


def test_json_maps_each_table_to_rows_keyed_by_the_report_columns(tmp_path: Path) -> None:
    output = replay(README_BUNDLE, tmp_path / "r", "--format", "json")
    tables = json.loads(output)  # nothing but the JSON object on stdout
    assert list(tables) == [
        "answer", "split_deferred", "reclaim_time", "capture", "validation", "timing", "notes"
    ]  # fmt: skip
    written = pd.read_parquet(tmp_path / "r" / "validation.parquet")
    assert tables["validation"] == written.to_dict("records")
    assert {"check", "counter", "size_kb", "model", "observed", "predicted_low",
            "predicted_high", "match"} <= set(tables["validation"][0])  # fmt: skip
    split = {(r["arch"], r["model"]): r for r in tables["split_deferred"] if r["size_kb"] == 64}
    assert split["x86", "unbatched"]["observed"] == 2048
    assert split["x86", "unbatched"]["predicted_high"] == 2048
    assert (
        split["riscv", "batched"]["predicted_low"]
        == split["riscv", "batched"]["predicted_high"]
        == 0
    )
    times = {(r["arch"], r["model"]): r for r in tables["reclaim_time"]}
    _, after, ratio = speedup(tmp_path / "r", "arm64", "batched")
    assert times["arm64", "batched"]["speedup"] == pytest.approx(ratio)
    assert times["arm64", "batched"]["time_ns"] == pytest.approx(after * 1e6)
    assert times["arm64", "unbatched"]["captured"] is True
    measured = [r for r in tables["timing"] if r["measured_ns"] is not None]
    assert [(r["model"], r["arch"]) for r in measured] == [("unbatched", "x86")]
    assert tables["capture"][0]["emulated"] is True and tables["capture"][0]["lost_events"] == 0


def test_several_folio_sizes_and_the_captured_arch_first(tmp_path: Path) -> None:
    output = replay(MIXED_ARM64, tmp_path / "r")
    lines = output.splitlines()
    assert "(arm64, QEMU TCG)" in lines[0] and "99 large-folio unmaps" in lines[0]
    split = [x for x in lines if x.startswith("split_deferred, captured kernel → ")]
    batched = next(x for x in split if "batched-partial" in x.split(":")[0])
    assert " batched," in batched and batched.endswith(": 16K 4 → 0, 64K 31 → 0, 2048K 64 → 0")
    time = next(x for x in lines if x.startswith("predicted reclaim time, "))
    assert time.split(": ", 1)[1].startswith("arm64 ")  # the captured arch first


def test_a_capture_without_large_folio_reclaim_says_so(tmp_path: Path) -> None:
    lines = replay(PARTIAL, tmp_path / "r").splitlines()
    assert lines[1] == f"validation (unbatched): {counters(tmp_path / 'r')} counters match"
    assert "- no large folio reached reclaim: nothing to replay through the models" in lines
    assert (
        "- 2048 large folios partially unmapped (munmap/MADV_DONTNEED): they count in "
        "split_deferred on every kernel"
    ) in lines


def test_a_host_capture_compares_its_measured_time(tmp_path: Path) -> None:
    output = replay(HOST, tmp_path / "r")
    timing = pd.read_parquet(tmp_path / "r" / "timing.parquet").dropna(subset=["measured_ns"])
    row = timing.iloc[0]
    lines = output.splitlines()
    assert "(x86)" in lines[0]  # no QEMU TCG
    # a batched kernel's capture: the other batched models split nothing either, unbatched would
    assert lines[1].startswith("split_deferred, captured kernel → batched, ")
    assert lines[1].endswith(": 0 at every size")
    assert "split_deferred, captured kernel → unbatched: 64K 0 → 2048" in lines
    assert (
        f"- measured MADV_PAGEOUT {row['measured_ns'] / 1e6:#.3g} ms; "
        f"batched-partial-pmd-split on x86 predicts {row['predicted_ns'] / 1e6:#.3g} ms "
        "with the tracepoints the capture wrote "
        f"({row['error']:+.1%})"
    ) in output
    assert "QEMU" not in output


def test_a_capture_without_madv_pageout_says_what_its_windows_measured(tmp_path: Path) -> None:
    """memory.force_empty written by a shell: one proactive_reclaim window, no MADV_PAGEOUT."""
    bundle = BUNDLES / "host" / "6.18.44-fc-v1300" / "force-empty"
    output = replay(bundle, tmp_path / "r")
    episodes = pd.read_parquet(tmp_path / "r" / "episodes.parquet")
    assert episodes["kind"].tolist() == ["proactive_reclaim"]
    measured = episodes["duration_ns"].iloc[0] / 1e6
    assert (
        "- no MADV_PAGEOUT call in the capture: no measured time is compared with the "
        "predictions, which price the unmap of the folios only (the reclaim windows measured: "
        f"proactive_reclaim {measured:#.3g} ms;"
    ) in output
    assert "measured MADV_PAGEOUT 0" not in output


def test_folios_kept_for_their_references_are_a_note(tmp_path: Path) -> None:
    """all-sizes-memcg: the redirtied staircases are kept for their references before any
    unmap; the note gives the episodes' nr_ref_keep sum. A capture without such pages has no
    such note."""
    bundle = BUNDLES / "host" / "6.18.44-fc-v1300" / "all-sizes-memcg"
    output = replay(bundle, tmp_path / "r")
    kept = int(pd.read_parquet(tmp_path / "r" / "episodes.parquet")["nr_ref_keep"].sum())
    assert kept > 0
    assert (
        f"- reclaim kept {kept} pages for their references (nr_ref_keep): met and never "
        "unmapped, alike under every model"
    ) in output
    assert "nr_ref_keep" not in replay(HOST, tmp_path / "h")


def test_columns_other_engineers_add_are_used_when_present(readme, capsys) -> None:
    """A validation verdict with its explanation and a what-if model, added to a real report."""
    report = load_report(readme[0])
    validation = report.tables["validation"]
    verdict = validation["match"].map({True: "match"})
    verdict[validation["counter"] == "pglazyfreed"] = "explained"
    report.tables["validation"] = validation.assign(
        verdict=verdict,
        explained_by=validation["counter"].map({"pglazyfreed": "order-0 pages of other tasks"}),
    )
    predictions = report.tables["predictions"]
    report.tables["predictions"] = predictions.assign(
        hypothetical=predictions["model"] == "batched"
    )
    render(summary(report, "edited"), "text")
    output = capsys.readouterr().out
    n = len(validation)
    assert (
        f"validation (unbatched): {n - 1}/{n} counters match; explained: pglazyfreed "
        "(order-0 pages of other tasks)"
    ) in output
    assert "batched (what-if)" in output and "- batched is a what-if: no kernel runs it" in output


def test_dirty_page_cache_folios_put_back_unmapped_share_one_evidence_text(tmp_path: Path) -> None:
    """Dirty page-cache folios of every size, the PMD-mapped ones among them, are unmapped and
    put back for writeback: one evidence text for records the unmap kind alone told apart
    (their categorical once had the text twice and the replay stopped with a traceback)."""
    bundle = BUNDLES / "host" / "6.18.44-fc-v1300" / "file-dirty-pageout"
    replay(bundle, tmp_path / "r")
    folios = pd.read_parquet(tmp_path / "r" / "folios.parquet")
    assert set(folios["outcome"]) == {"unmapped"}
    assert set(folios["captured_unmap"]) == {"per_page", "pmd"}
    assert folios.loc[folios["captured_unmap"] == "pmd", "size_kb"].tolist() == [2048] * 12
    assert folios["evidence"].astype(str).unique().tolist() == [
        "mm_page_alloc; mm_filemap_add_to_page_cache of its pfn; "
        "put back unmapped (writeback pending)"
    ]
