"""The replay command's report directory: Parquet tables readable by pandas, polars and duckdb."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from folio_replay.replay.report import TABLES

from folio_replay.cli import main
from folio_replay.outputs import MARKER

BUNDLE = (
    Path(__file__).resolve().parent.parent
    / "fixtures"
    / "bundles"
    / "x86_64"
    / "6.12.117+deb13-cloud-amd64"
    / "microbench"
)
REQUIRED = {
    "predictions": {
        "model",
        "arch",
        "episode",
        "size_kb",
        "split_deferred_low",
        "split_deferred_high",
        "time_ns",
    },
    "validation": {
        "counter",
        "size_kb",
        "model",
        "observed",
        "predicted_low",
        "predicted_high",
        "match",
    },
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One report of the 6.12 x86 microbench bundle, and the command's output."""
    target = tmp_path_factory.mktemp("reports") / "microbench"
    result = CliRunner().invoke(main, ["replay", str(BUNDLE), "-o", str(target)])
    assert result.exit_code == 0, result.output
    return target, result.output


def test_every_table_is_written_with_version_kernel_and_cost_digests(report) -> None:
    target, _ = report
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [MARKER, *(f"{t}.parquet" for t in TABLES)]
    )
    kernel = json.loads((BUNDLE / "meta.json").read_text())["kernel"]
    for name in TABLES:
        metadata = pq.read_schema(target / f"{name}.parquet").metadata
        assert metadata[b"folio_replay.kernel"].decode() == kernel
        assert metadata[b"folio_replay.version"]
        digests = json.loads(metadata[b"folio_replay.cost_tables"])
        assert set(digests) == {"x86", "arm64", "riscv"}
        assert all(len(digest) == 64 for digest in digests.values())
        assert b"emulation" in metadata[b"folio_replay.timings"]
        assert metadata[b"folio_replay.captured_model"].startswith(b"unbatched: release 6.12")
        assert metadata[b"folio_replay.lost_events"] == b"0"


@pytest.mark.parametrize("name", TABLES)
def test_pandas_polars_and_duckdb_read_the_same_rows(report, name: str) -> None:
    target, _ = report
    path = target / f"{name}.parquet"
    rows = len(pd.read_parquet(path))
    assert len(pl.read_parquet(path)) == rows
    assert duckdb.sql(f"select count(*) from '{path}'").fetchall() == [(rows,)]
    assert REQUIRED.get(name, set()) <= set(pl.read_parquet(path).columns)


def test_report_holds_the_microbench_headline(report) -> None:
    target, output = report
    predictions = duckdb.sql(
        f"select model, sum(split_deferred_low) lo, sum(split_deferred_high) hi "
        f"from '{target / 'predictions.parquet'}' where arch = 'x86' group by model "
        f"order by model"
    ).fetchall()
    assert predictions == [
        ("batched", 0, 0),
        ("batched-file", 0, 0),
        ("batched-file-pmd-split", 0, 0),
        ("batched-partial", 0, 0),
        ("unbatched", 2048, 2048),
        ("whatif-batched-swapbacked", 0, 0),
    ]
    assert pd.read_parquet(target / "validation.parquet")["match"].all()
    assert len(pd.read_parquet(target / "events.parquet")) == len(
        pl.read_parquet(target / "events.parquet")
    )
    checked = len(pd.read_parquet(target / "validation.parquet"))
    assert "QEMU TCG emulation" in output
    assert f"validation (unbatched): {checked}/{checked}" in output


def test_existing_report_refused_without_force(report) -> None:
    target, _ = report
    before = sorted(p.stat().st_mtime_ns for p in target.iterdir())
    refused = CliRunner().invoke(main, ["replay", str(BUNDLE), "-o", str(target)])
    assert refused.exit_code == 2
    assert "exists (use --force" in refused.output and "Traceback" not in refused.output
    assert sorted(p.stat().st_mtime_ns for p in target.iterdir()) == before
    forced = CliRunner().invoke(
        main,
        [
            "replay",
            str(BUNDLE),
            "-o",
            str(target),
            "--force",
            "--model",
            "unbatched",
            "--arch",
            "x86",
        ],
    )
    assert forced.exit_code == 0, forced.output
    assert set(pd.read_parquet(target / "predictions.parquet")["model"]) == {"unbatched"}
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]


def test_readme_documents_every_column_of_every_report_table() -> None:
    import tomllib

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    tables = tomllib.loads(
        (Path(__file__).resolve().parent.parent / "replay" / "report_schema.toml").read_text()
    )["tables"]
    assert set(tables) | {"events"} == set(TABLES)
    for name, table in tables.items():
        assert f"### {name}" in text
        for column, kind, _ in table["columns"]:
            assert f"| `{column}` | {kind} |" in text, (name, column)


def test_written_columns_follow_the_documented_schema(report) -> None:
    from folio_replay.replay.report import report_schema

    target, _ = report
    for name in TABLES:
        if name != "events":
            assert pq.read_schema(target / f"{name}.parquet").remove_metadata() == report_schema(
                name
            )


@pytest.mark.parametrize("scenario", ["partial-munmap"])
def test_a_capture_without_large_folio_reclaim_still_reports(tmp_path: Path, scenario: str) -> None:
    bundle = BUNDLE.parent / scenario
    result = CliRunner().invoke(main, ["replay", str(bundle), "-o", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "nothing to replay through the models" in result.output
    assert pd.read_parquet(tmp_path / "r" / "predictions.parquet").empty
    assert pd.read_parquet(tmp_path / "r" / "validation.parquet")["match"].all()
    assert pd.read_parquet(tmp_path / "r" / "partial.parquet")["partial_high"].sum() == 2048


def test_a_user_cost_table_replaces_only_its_own_arch(tmp_path: Path) -> None:
    from folio_replay.replay.costs.tables import load_table

    user = Path(__file__).resolve().parent.parent / "replay" / "costs" / "x86-tcg.toml"
    target = tmp_path / "r"
    result = CliRunner().invoke(
        main, ["replay", str(BUNDLE), "-o", str(target), "--costs", str(user)]
    )
    assert result.exit_code == 0, result.output
    digests = json.loads(
        pq.read_schema(target / "predictions.parquet").metadata[b"folio_replay.cost_tables"]
    )
    assert digests["x86"] == load_table(user).digest
    assert digests["arm64"] == load_table("arm64").digest
    assert digests["riscv"] == load_table("riscv").digest


def test_costs_takes_a_shipped_tables_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--costs x86-xeon.toml`` names the shipped table of that name (the user need not know
    where the package is installed); a file of that name in the current directory wins."""
    from folio_replay.replay.costs.tables import COSTS_DIR, load_table

    monkeypatch.chdir(tmp_path)
    target = tmp_path / "r"
    args = ["replay", str(BUNDLE), "-o", str(target), "--arch", "x86", "--costs", "x86-xeon.toml"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    digests = json.loads(
        pq.read_schema(target / "predictions.parquet").metadata[b"folio_replay.cost_tables"]
    )
    assert digests["x86"] == load_table(COSTS_DIR / "x86-xeon.toml").digest
    assert digests["x86"] != load_table("x86").digest
    (tmp_path / "x86-xeon.toml").write_text((COSTS_DIR / "x86-tcg.toml").read_text())
    result = CliRunner().invoke(main, [*args[:3], str(tmp_path / "s"), *args[4:]])
    assert result.exit_code == 0, result.output
    digests = json.loads(
        pq.read_schema(tmp_path / "s" / "predictions.parquet").metadata[b"folio_replay.cost_tables"]
    )
    assert digests["x86"] == load_table(tmp_path / "x86-xeon.toml").digest
