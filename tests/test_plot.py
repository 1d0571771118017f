"""folio-replay plot on real reports and on a fleet dataset made of real reports: the images'
sizes, that they are not blank, their axes' labels, and the HTML page's tables."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from click.testing import CliRunner
from report_models import other_models, pageout_ms, speedup_label

from folio_replay.cli import main
from folio_replay.present.fleet import fleet_rows, fleet_tables, load_fleet
from folio_replay.present.report import load_report

BUNDLES = Path(__file__).resolve().parent.parent / "fixtures" / "bundles"
README_BUNDLE = BUNDLES / "x86_64" / "6.12.117+deb13-cloud-amd64" / "microbench"
FLEET = [
    BUNDLES / machine / release / scenario
    for machine, release in (
        ("x86_64", "6.12.117+deb13-cloud-amd64"),
        ("aarch64", "6.12.117+deb13-cloud-arm64"),
        ("riscv64", "6.12.117+deb13-riscv64"),
    )
    for scenario in ("microbench", "mixed")
]
SVG = "{http://www.w3.org/2000/svg}"


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("plot") / "microbench"
    run("replay", str(README_BUNDLE), "-o", str(target))
    return target


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A hive-partitioned dataset (by arch) of the speedups of six real 6.12 reports."""
    root = tmp_path_factory.mktemp("fleet")
    (root / "reports").mkdir()
    frames = []
    for bundle in FLEET:
        target = root / "reports" / f"{bundle.parent.parent.name}-{bundle.name}"
        run("replay", str(bundle), "-o", str(target))
        frames.append(fleet_rows(load_report(target), str(bundle.relative_to(BUNDLES))))
    rows = pd.concat(frames, ignore_index=True)
    ds.write_dataset(
        pa.Table.from_pandas(rows, preserve_index=False),
        root / "dataset",
        format="parquet",
        partitioning=ds.partitioning(pa.schema([("arch", pa.string())]), flavor="hive"),
    )
    return root / "dataset"


def svg_texts(path: Path) -> list[str]:
    """Every text element of an SVG file."""
    return ["".join(t.itertext()) for t in ET.parse(path).getroot().iter(f"{SVG}text")]


def assert_drawn(png: Path, width: int, height: int) -> None:
    """The PNG has the figure's size in pixels and is not blank."""
    image = matplotlib.image.imread(png)
    assert image.shape[:2] == (height, width)
    pixels = image[..., :3].reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 50  # bars, text, anti-aliasing: many colours
    assert (pixels.min(axis=1) < 0.9).mean() > 0.05  # more than 5% of the pixels drawn on


def test_report_png_has_three_panels_and_is_not_blank(report: Path, tmp_path: Path) -> None:
    out = tmp_path / "microbench.png"
    assert run("plot", str(report), "-o", str(out)).strip() == f"plot: {out}"
    assert_drawn(out, 900, 1200)  # 9 x 12 inches at 100 dpi


def test_report_svg_labels_its_axes(report: Path, tmp_path: Path) -> None:
    out = tmp_path / "microbench.svg"
    run("plot", str(report), "-o", str(out))
    texts = svg_texts(out)
    for label in ("folio size", "split_deferred", "arch", "time (ms)", "episode kind"):
        assert label in texts
    assert "time from the first call (ms)" in texts
    assert {"64K", "x86", "arm64", "riscv", "madvise_pageout", "madvise_free"} <= set(texts)
    assert {"unbatched (captured)", "batched", "batched-partial", "observed"} <= set(texts)
    # speedups over the captured kernel's model, written above the batched bars
    n = len(other_models(report))  # batched, batched-partial, ...: the same on the microbench
    for arch in ("x86", "arm64", "riscv"):
        assert texts.count(speedup_label(report, arch, "batched")) == n
    assert "2048 folios" in texts  # the MADV_PAGEOUT episode and the MADV_FREE call


def test_report_html_embeds_the_plots_and_the_summary(report: Path, tmp_path: Path) -> None:
    out = tmp_path / "microbench.html"
    run("plot", str(report), "-o", str(out))
    page = out.read_text()
    assert page.count("<svg") == 3 and page.count("<figcaption>") == 3
    others = other_models(report)
    assert f"split_deferred, captured kernel → {', '.join(others)}: 64K 2048 → 0" in page
    tables = pd.read_html(out)  # the summary tables, as people read them
    assert tables[0].astype(str).values.tolist() == [
        ["64K", "2048", "2048", "2048", *["0"] * len(others)]
    ]
    assert tables[1].columns.tolist() == ["arch", "unbatched (captured)", *others]
    captured, batched = pageout_ms(report, "x86", "unbatched"), pageout_ms(report, "x86", "batched")
    label = f"{batched:#.3g} ms ({speedup_label(report, 'x86', 'batched')})"
    assert tables[1].iloc[0].tolist() == ["x86", f"{captured:#.3g} ms", *[label] * len(others)]


def test_fleet_speedups_png_svg_html(fleet: Path, tmp_path: Path) -> None:
    frame = load_fleet(fleet)
    assert sorted(frame["arch"].unique()) == ["arm64", "riscv", "x86"]
    models = frame["model"].nunique()  # every model but the captured unbatched
    assert frame["bundle"].nunique() == 6 and len(frame) == 6 * 3 * models
    for fmt in ("png", "svg", "html"):
        run("plot", str(fleet), "-o", str(tmp_path / f"fleet.{fmt}"))
    assert_drawn(tmp_path / "fleet.png", 900, 500)
    texts = svg_texts(tmp_path / "fleet.svg")
    assert "speedup (×)" in texts and "arch and model" in texts
    assert "speedup over the captured kernel's model, 6 bundles" in texts
    shown = pd.read_html(tmp_path / "fleet.html")[0]
    x86 = frame[(frame["arch"] == "x86") & (frame["model"] == "batched-partial")]["speedup"]
    row = shown[(shown["arch"] == "x86") & (shown["model"] == "batched-partial")].iloc[0]
    assert row["median"] == f"{x86.median():.2f}×" and row["bundles"] == 6
    data = fleet_tables(frame)[0].data
    assert data["bundles"].tolist() == [6] * 3 * models


def test_plot_refuses_unknown_formats_and_existing_files(report: Path, tmp_path: Path) -> None:
    bad = CliRunner().invoke(main, ["plot", str(report), "-o", str(tmp_path / "x.gif")])
    assert bad.exit_code == 2 and "unknown plot format '.gif'" in bad.output
    out = tmp_path / "x.png"
    out.write_bytes(b"keep")
    refused = CliRunner().invoke(main, ["plot", str(report), "-o", str(out)])
    assert refused.exit_code == 2 and "exists (use --force" in refused.output
    assert out.read_bytes() == b"keep"
    not_data = CliRunner().invoke(main, ["plot", str(tmp_path), "-o", str(tmp_path / "y.png")])
    assert not_data.exit_code == 2 and "no Parquet files" in not_data.output
