"""folio-replay fleet on real bundles: Dask process workers (a LocalCluster, and a separate
``dask scheduler`` / ``dask worker`` pair), the dataset read by pandas, Polars and DuckDB,
bad bundles as statuses, resume and --force, writes that leave nothing half-done."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from folio_replay.replay.analysis import analyse

from folio_replay.cli import main
from folio_replay.fleet import (
    bundle_id,
    find_bundles,
    fleet_settings,
    fleet_tables,
    load_rows,
    load_status,
    open_dataset,
    replay,
    run_fleet,
)
from folio_replay.fleet import run as fleet_run
from folio_replay.fleet.dataset import FleetDataset
from folio_replay.fleet.run import local_client
from folio_replay.outputs import MARKER
from folio_replay.present import units
from folio_replay.present.tables import render

distributed = pytest.importorskip("distributed")

BUNDLES = Path(__file__).resolve().parent.parent / "fixtures" / "bundles"
X86_612 = BUNDLES / "x86_64" / "6.12.117+deb13-cloud-amd64"
X86_72 = BUNDLES / "x86_64" / "7.2.13+deb14-cloud-amd64"
SCENARIOS = ("microbench", "redirty-first-64k", "redirty-last-64k")
HOST = BUNDLES / "host" / "6.18.44-fc-v669" / "microbench"
GOOD = [kernel / scenario for kernel in (X86_612, X86_72) for scenario in SCENARIOS] + [HOST]
MICROBENCH = X86_612 / "microbench"
MODELS = fleet_settings()["models"]
# Each bundle: every default model on 3 archs, and the captured kernel's model where it is not
# a default one (the host's 6.18.44 runs batched-partial-pmd-split).
HOST_ROWS = 3 * (len(MODELS) + 1)
ROWS = (len(GOOD) - 1) * 3 * len(MODELS) + HOST_ROWS
KEY = ["bundle", "arch", "model"]


def dask(tool: str) -> list[str]:
    """``dask scheduler`` or ``dask worker`` of this Python's distributed."""
    return [sys.executable, "-m", f"distributed.cli.dask_{tool}"]


def row_files(dataset: Path) -> dict[str, int]:
    """Every Parquet file of the dataset and its inode (a rewritten file gets a new one)."""
    return {
        str(path.relative_to(dataset)): path.stat().st_ino for path in dataset.rglob("*.parquet")
    }


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the 6.12 microbench whose meta.json names no kernel release."""
    target = tmp_path_factory.mktemp("broken") / "microbench"
    shutil.copytree(MICROBENCH, target)
    (target / "meta.json").write_text('{"kernel": 12, "arch": "x86_64"}\n')
    return target


@pytest.fixture(scope="module")
def bundle_list(tmp_path_factory: pytest.TempPathFactory, broken: Path) -> Path:
    """A list file: the good bundles (relative paths), a comment, the broken copy, a path that
    does not exist."""
    listing = tmp_path_factory.mktemp("list") / "bundles.txt"
    lines = ["# the fleet", *(os.path.relpath(b, listing.parent) for b in GOOD), ""]
    lines += [str(broken), str(listing.parent / "gone")]
    listing.write_text("\n".join(lines) + "\n")
    return listing


def invoke(cli: Callable[..., Result], *args: str | Path) -> Result:
    result = cli("fleet", *args)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory, bundle_list: Path) -> tuple[Path, dict]:
    """The list run by the command on its own LocalCluster (2 worker processes): the dataset
    and the JSON output."""
    dataset = tmp_path_factory.mktemp("first") / "fleet"
    args = ["fleet", str(bundle_list), "-o", str(dataset), "--workers", "2", "--format", "json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return dataset, json.loads(result.stdout)


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    """A LocalCluster of 2 worker processes for the library calls."""
    with local_client(2) as connected:
        yield connected


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A separate ``dask scheduler`` and ``dask worker`` on loopback, random ports: the
    scheduler's address."""
    work = tmp_path_factory.mktemp("dask")
    file = work / "scheduler.json"
    log = open(work / "dask.log", "w")  # noqa: SIM115 (closed below)
    common = ["--no-dashboard", "--host", "127.0.0.1"]
    started = [
        subprocess.Popen(
            [*dask("scheduler"), "--port", "0", *common, "--scheduler-file", str(file)],
            stdout=log,
            stderr=log,
            cwd=work,  # not a source tree: the installed folio_replay, as a user's
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not file.exists():
            assert time.monotonic() < deadline, (work / "dask.log").read_text()
            time.sleep(0.1)
        worker = [*dask("worker"), *common]
        worker += ["--scheduler-file", str(file), "--nworkers", "1", "--nthreads", "1"]
        started.append(
            subprocess.Popen(
                [*worker, "--local-directory", str(work)], stdout=log, stderr=log, cwd=work
            )
        )
        address = json.loads(file.read_text())["address"]
        with distributed.Client(address, timeout="30s") as connected:
            connected.wait_for_workers(1, timeout=60)
        yield address
    finally:
        for process in reversed(started):
            process.terminate()
            process.wait(timeout=30)
        log.close()


def test_bundles_are_found_in_directories_and_lists(
    bundle_list: Path, broken: Path, tmp_path: Path
) -> None:
    found = find_bundles([X86_612, HOST])
    names = sorted(path.name for path in X86_612.iterdir())
    assert [path.name for path in found] == [*names, "microbench"]
    assert find_bundles([bundle_list]) == [*GOOD, broken, bundle_list.parent / "gone"]
    assert find_bundles([MICROBENCH, X86_612]) == find_bundles([X86_612])  # each once
    # the id: the resolved path and meta.json's digest
    assert bundle_id(MICROBENCH) == bundle_id(X86_612 / ".." / X86_612.name / "microbench")
    copy = tmp_path / "copy"
    shutil.copytree(MICROBENCH, copy)
    before = bundle_id(copy)
    assert before != bundle_id(MICROBENCH)
    (copy / "meta.json").write_text((copy / "meta.json").read_text().replace("}", ', "x": 1}', 1))
    assert bundle_id(copy) != before


def test_a_trace_dat_alone_is_a_bundle_of_the_fleet(client, tmp_path: Path) -> None:
    """fixtures/host/trace-v6.dat given as a source (and in a list): a bundle of that trace
    alone, its release and machine from the file (6.18, x86_64); replayed like a bundle, its
    id from its size and first MiB."""
    trace = BUNDLES.parent / "host" / "trace-v6.dat"
    listing = tmp_path / "list.txt"
    listing.write_text(f"{trace}\n")
    assert find_bundles([trace]) == find_bundles([listing]) == [trace.resolve()]
    copy = tmp_path / "trace-v6.dat"
    shutil.copyfile(trace, copy)
    assert bundle_id(copy) != bundle_id(trace)
    status = run_fleet([trace], tmp_path / "fleet", scheduler=client)
    assert status[["run", "status"]].values.tolist() == [["replayed", "ok"]]
    rows = load_rows(tmp_path / "fleet")
    assert set(rows["kernel_series"]) == {"6.18"} and len(rows) == int(status["rows"].iat[0])
    unbatched = rows[(rows["arch"] == "x86") & (rows["model"] == "unbatched")]
    assert unbatched[["folios", "split_deferred_low", "split_deferred_high"]].values.tolist() == [
        [2048, 2048, 2048]
    ]
    assert set(rows["release"]) == {"6.18.44-fc-v669"}


def test_a_task_returns_only_its_summary_rows() -> None:
    digests = fleet_settings()["cost_tables"]
    rows, status = replay(str(MICROBENCH), bundle_id(MICROBENCH), digests=digests)
    assert rows.num_rows == 3 * len(MODELS) and rows.nbytes < 64 * 1024
    assert status["status"] == "ok" and status["validation"] == "match"
    json.dumps(status)  # plain values only
    # priced with other tables than the fleet started with: an error, no rows
    rows, status = replay(str(MICROBENCH), "0" * 16, digests={**digests, "x86": "0" * 64})
    assert rows.num_rows == 0
    assert status["status"].endswith(
        "x86.toml: this x86 cost table is not the one the fleet started with (sha256 "
        f"{digests['x86'][:12]}…, not 000000000000…): edited during the run, or the worker's "
        "install differs"
    )


def test_statuses_ok_or_the_bundles_error(first, broken: Path, bundle_list: Path) -> None:
    dataset, output = first
    status = {row["bundle"]: row for row in output["fleet_status"]}
    gone = str(bundle_list.parent / "gone")  # the list's entry that does not exist
    assert list(status) == [str(b) for b in GOOD] + [str(broken), gone]
    for bundle in GOOD:
        row = status[str(bundle)]
        assert (row["status"], row["run"], row["validation"]) == ("ok", "replayed", "match")
        assert row["rows"] == (HOST_ROWS if bundle == HOST else 3 * len(MODELS))
    assert status[str(broken)]["status"] == (
        f"{broken}/meta.json:1: 'kernel' must be a /proc/version line or a release such as "
        "6.12.117, not 12"
    )
    assert status[gone]["status"] == f"{gone}: not a bundle directory"
    on_disk = load_status(dataset).set_index("bundle")["status"]
    assert on_disk.to_dict() == {bundle: row["status"] for bundle, row in status.items()}


def test_the_dataset_reads_the_same_in_pandas_polars_and_duckdb(first) -> None:
    dataset, _ = first
    glob = f"{dataset}/**/*.parquet"
    frame = pd.read_parquet(dataset)  # pyarrow: hive partitions; _status and dot files skipped
    strings = {"arch": pl.String, "kernel_series": pl.String, "model": pl.String}
    polars = pl.scan_parquet(glob, hive_partitioning=True, hive_schema=strings).collect()
    query = f"select * from read_parquet('{glob}', hive_partitioning = true)"
    duck = duckdb.sql(query).df()
    assert len(frame) == len(polars) == len(duck) == ROWS
    columns = ["bundle", "arch", "kernel_series", "model", "split_deferred_high", "speedup"]
    frames = [
        f[columns].astype({"arch": str, "kernel_series": str, "model": str})
        for f in (frame, polars.to_pandas(), duck)
    ]
    frames = [f.sort_values(KEY).reset_index(drop=True) for f in frames]
    pd.testing.assert_frame_equal(frames[0], frames[1])
    pd.testing.assert_frame_equal(frames[0], frames[2])
    assert set(frame["kernel_series"].astype(str)) == {"6.12", "7.2", "6.18"}


def test_real_values(first) -> None:
    dataset, _ = first
    glob = f"{dataset}/**/*.parquet"
    # the 6.12 microbench: split_deferred 64K 2048 under unbatched, 0 under batched models
    sizes = dict(
        duckdb.sql(
            f"select model, split_deferred_high from (select model, "
            f"unnest(sizes, recursive := true) from read_parquet('{glob}', "
            f"hive_partitioning = true) where bundle = '{MICROBENCH}' and arch = 'x86') "
            "where size_kb = 64"
        ).fetchall()
    )
    assert sizes == {model: 2048 if model == "unbatched" else 0 for model in MODELS}
    rows = load_rows(dataset).set_index(["bundle", "arch", "model"])
    micro = rows.loc[str(MICROBENCH)]
    assert micro.loc[("x86", "unbatched"), ["captured", "release"]].tolist() == [
        True,
        "6.12.117+deb13-cloud-amd64",
    ]
    # times and speedups: the predictions of the bundle's own analysis, summed (the shipped
    # cost tables change; the rows must follow them)
    for bundle, captured in ((MICROBENCH, "unbatched"), (X86_72 / "microbench", "batched-file")):
        predictions = analyse(bundle).predictions
        times = predictions.groupby(["arch", "model"])["time_ns"].sum()
        got = rows.loc[str(bundle)]
        assert got["captured"].groupby("model").all().to_dict() == {
            model: model == captured for model in MODELS
        }
        for (arch, model), time_ns in times.items():
            assert got.loc[(arch, model), "time_ns"] == pytest.approx(time_ns)
            speedup = times[(arch, captured)] / time_ns
            assert got.loc[(arch, model), "speedup"] == pytest.approx(speedup)
    # the batching pays on every arch; the 7.2 capture replayed unbatched would queue the
    # 2048 and be slower
    assert (micro.xs("batched-partial", level="model")["speedup"] > 1.2).all()
    new = rows.loc[str(X86_72 / "microbench")]
    assert new.loc[("x86", "unbatched"), "split_deferred_high"] == 2048
    assert new.loc[("x86", "unbatched"), "speedup"] < 0.9


def test_the_summary_over_the_bundles(first) -> None:
    dataset, output = first
    summary = pd.DataFrame(output["fleet_summary"])
    rows = load_rows(dataset)
    # 3 archs, 3 kernel series; 6.18 also with its captured model
    assert len(summary) == 3 * 3 * len(MODELS) + 3
    old = summary[(summary["arch"] == "x86") & (summary["kernel_series"] == "6.12")]
    assert old["model"].iloc[0] == "unbatched"  # the captured kernel's model first
    line = old.set_index("model").loc["batched-partial"]
    assert (line["bundles"], line["captured"]) == (3, 0)
    assert line["split_deferred_high"] == 0 and line["folios"] > 0
    speedups = rows[
        (rows["arch"] == "x86")
        & (rows["kernel_series"] == "6.12")
        & (rows["model"] == "batched-partial")
    ]["speedup"]
    assert len(speedups) == 3
    for q in (50, 90, 99):
        assert line[f"speedup_p{q}"] == pytest.approx(speedups.quantile(q / 100))
    unbatched = old.set_index("model").loc["unbatched"]
    assert unbatched["captured"] == 3 and unbatched["speedup_p50"] == 1.0


def test_text_output_and_plot(first, cli, tmp_path: Path) -> None:
    dataset, _ = first
    text = invoke(cli, *GOOD, "-o", dataset).stdout
    assert text.startswith(f"{len(GOOD)} bundles: 0 replayed, {len(GOOD)} already in {dataset}")
    speedups = load_rows(dataset).query("arch == 'x86' and model == 'batched-partial'")
    shown = units.speedup(speedups.query("kernel_series == '6.12'")["speedup"].median())
    assert "unbatched (captured)" in text
    assert re.search(rf"x86 +6\.12 +batched-partial +3 .* {re.escape(shown)} ", text)
    plot = tmp_path / "fleet.png"
    assert cli("plot", dataset, "-o", plot).exit_code == 0 and plot.stat().st_size > 10_000


def test_resume_skips_without_starting_a_cluster(first, cli, monkeypatch) -> None:
    dataset, _ = first
    before = row_files(dataset)

    def no_cluster(*_args: object) -> None:
        raise AssertionError("nothing to replay: no cluster should start")

    monkeypatch.setattr(fleet_run, "_client", no_cluster)
    output = json.loads(invoke(cli, *GOOD, "-o", dataset, "--format", "json").stdout)
    assert {row["run"] for row in output["fleet_status"]} == {"skipped"}
    assert row_files(dataset) == before


def test_errors_are_retried_and_force_redoes(first, bundle_list, client, tmp_path, capsys) -> None:
    dataset = tmp_path / "fleet"
    shutil.copytree(first[0], dataset)
    before = row_files(dataset)
    foreign = dataset / "arch=x86" / "kernel_series=6.12" / "model=unbatched" / "notes.txt"
    foreign.write_bytes(b"not folio-replay's")
    status = run_fleet([bundle_list], dataset, scheduler=client)
    assert status["run"].tolist() == ["skipped"] * len(GOOD) + ["replayed"] * 2
    assert status["status"].tolist()[: len(GOOD)] == ["ok"] * len(GOOD)
    render(fleet_tables(load_rows(dataset), status, str(dataset)), "markdown")
    shown = capsys.readouterr().out  # errors without the bundle's path in front
    assert "| not a bundle directory " in shown and "gone: not a bundle" not in shown
    assert "| meta.json:1: 'kernel' must be a /proc/version line" in shown
    assert f"- {len(GOOD) + 2} bundles: 0 replayed, {len(GOOD)} already in" in shown
    assert row_files(dataset) == before
    # partial-munmap: its folios were split before reclaim, none to replay: ok, no rows
    partial = X86_72 / "partial-munmap"
    status = run_fleet([MICROBENCH, partial], dataset, force=True, scheduler=client)
    assert status[["run", "status", "rows"]].values.tolist() == [
        ["replayed", "ok", 3 * len(MODELS)],
        ["replayed", "ok", 0],
    ]
    render(fleet_tables(load_rows(dataset), status, str(dataset)), "text")
    shown = capsys.readouterr().out
    assert "2 bundles: 2 replayed, 0 already in" in shown
    assert "; 1 ok without rows (no large folio reached reclaim)" in shown
    after = row_files(dataset)
    mine = bundle_id(MICROBENCH)
    assert {name for name in after if after[name] != before.get(name)} == {
        name for name in before if name.endswith(f"/{mine}.parquet")
    }
    assert foreign.read_bytes() == b"not folio-replay's"
    pd.testing.assert_frame_equal(
        load_rows(dataset).sort_values(KEY, ignore_index=True),
        load_rows(first[0]).sort_values(KEY, ignore_index=True),
    )


def test_an_external_scheduler_gives_the_same_rows(first, scheduler, cli, tmp_path) -> None:
    dataset = tmp_path / "fleet"
    output = json.loads(
        invoke(cli, *GOOD, "-o", dataset, "--scheduler", scheduler, "--format", "json").stdout
    )
    assert {row["status"] for row in output["fleet_status"]} == {"ok"}
    ours, theirs = (load_rows(d).sort_values(KEY, ignore_index=True) for d in (dataset, first[0]))
    assert len(ours) == ROWS
    pd.testing.assert_frame_equal(ours, theirs)
    assert output["fleet_summary"] == first[1]["fleet_summary"]


def test_an_interrupted_write_leaves_no_half_files(tmp_path, monkeypatch) -> None:
    rows, status = replay(str(MICROBENCH), bundle_id(MICROBENCH))
    dataset = tmp_path / "fleet"
    store = open_dataset(dataset, fleet_settings())
    written = []
    real = pq.write_table

    def fail_third(table, where, **options) -> None:
        if len(written) == 2:
            raise KeyboardInterrupt
        real(table, where, **options)
        written.append(where)

    monkeypatch.setattr(pq, "write_table", fail_third)
    with pytest.raises(KeyboardInterrupt):
        store.write(rows, status)
    monkeypatch.setattr(pq, "write_table", real)
    files = [p for p in dataset.rglob("*") if p.is_file()]
    assert sorted(p.name for p in files) == sorted(
        [MARKER, "_fleet.json", *[f"{status['bundle_id']}.parquet"] * 2]
    )
    for path in files:
        if path.suffix == ".parquet":
            assert pq.read_table(path).num_rows == 1  # complete files only
    assert store.status(status["bundle_id"]) is None and load_rows(dataset).empty
    FleetDataset(dataset).write(rows, status)
    assert len(load_rows(dataset)) == rows.num_rows


def test_refused_outputs_and_bad_arguments(first, cli, tmp_path, monkeypatch) -> None:
    def error(*args: str | Path) -> str:
        result = cli("fleet", *args)
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("folio-replay: error: "), result.output
        return lines[0]

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    assert "folio-replay did not write" in error(MICROBENCH, "-o", foreign)
    report = tmp_path / "report"
    report.mkdir()
    (report / MARKER).write_text("written by folio-replay\n")
    assert "is not a fleet dataset (no _fleet.json)" in error(MICROBENCH, "-o", report)
    assert "was made with other archs" in error(MICROBENCH, "-o", first[0], "--arch", "x86")
    assert "is an input of this run" in error(X86_612, "-o", MICROBENCH / "fleet")
    for not_a_list, why in (
        ("meta.json", "names no existing path: not a list of bundles"),
        (
            "trace.txt.gz",
            "trace.txt.gz@0x1: not a list of bundles (not UTF-8 text), a bundle directory or a "
            "trace.dat",
        ),
    ):
        assert why in error(MICROBENCH / not_a_list, "-o", tmp_path / "fleet")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no bundle (meta.json)" in error(empty, "-o", tmp_path / "fleet")
    assert "not with --scheduler" in error(
        MICROBENCH, "-o", tmp_path / "x", "--scheduler", "tcp://127.0.0.1:1", "--workers", "2"
    )
    monkeypatch.setattr(fleet_run, "CONNECT_TIMEOUT", "1s")
    assert "cannot reach the Dask scheduler" in error(
        MICROBENCH, "-o", tmp_path / "fleet", "--scheduler", "tcp://127.0.0.1:1"
    )
    assert not list(tmp_path.glob(".*.tmp"))
