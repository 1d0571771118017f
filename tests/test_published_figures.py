"""The published hardware measurements of the batched unmap and its neighbours against the
speedups folio-replay predicts for their re-created workloads (replay/costs/published.toml),
with the shipped table of the arch each was measured on, untraced. Nothing in the tables was
fitted to these figures: this is a check, and it says which figures the tables meet (within
20%) and which they do not, with the numbers of the README table ("Against the published
figures")."""

from __future__ import annotations

import pytest
from folio_replay.replay.costs.published import FIGURES, markdown, published_table

# figure: (predicted speedup with the hardware table, within 20% of the published figure)
EXPECTED = {
    "batched-lazyfree-64k": (2.74, True),
    "redirtied-pmd-skip": (18.15, False),
    "lazyfree-pmd-discard": (45.47, False),
    "batched-file-arm64": (1.84, False),
    "batched-file-x86": (3.15, True),  # a lower bound ("50%+"): met when not 20% below it
    "batched-anon-swap-arm64": (1.32, False),
    "batched-anon-swap-x86": (1.54, False),
}


@pytest.fixture(scope="module")
def table():
    return published_table()


def test_every_figure_has_its_source_machine_and_workload() -> None:
    assert [f["id"] for f in FIGURES] == list(EXPECTED)
    for figure in FIGURES:
        assert figure["quote"] and figure["source"].startswith("https://")
        assert figure["machine"] and figure["arch"] in ("x86", "arm64", "riscv")
        assert figure["before_s"] > figure["after_s"] > 0
    required = {f["change"].split()[0] for f in FIGURES[:2]}
    assert required == {"354dffd29575", "2f9b43d617e2"}  # the two figures of the series


def test_predictions_against_the_published_figures(table) -> None:
    rows = {row["figure"]: row for row in table.to_dict("records")}
    for figure, (predicted, holds) in EXPECTED.items():
        row = rows[figure]
        assert row["predicted"] == pytest.approx(predicted, rel=0.02), figure
        assert row["within_20pct"] is holds, (figure, row)
        # from either capture of the re-created workload: the same folios, the same speedup
        assert row["predicted_from_after"] == pytest.approx(row["predicted"], rel=0.02)


def test_the_series_own_64k_figure_holds_on_arm64(table) -> None:
    """354dffd29575's '2.5x' (2.39x from its 33 timings) on arm64: the lab's 6.12 -> 7.2 arm64
    microbench replayed with the arm64 table, untraced."""
    row = table.set_index("figure").loc["batched-lazyfree-64k"]
    assert row["arch"] == "arm64" and abs(row["error"]) <= 0.20


def test_markdown_table_shows_every_figure(table) -> None:
    text = markdown(table)
    assert all(f"`{figure}`" in text for figure in EXPECTED)
    assert text.count("✗") == sum(not holds for _, holds in EXPECTED.values())


def test_the_series_pmd_figure_on_the_arm64_emulation_table(table) -> None:
    """2f9b43d617e2's '3.5X' (3.35x) against the lab's arm64 pmd-redirty capture priced with
    arm64-tcg.toml (fitted to the lab's TCG runs, not to this figure; the series' timings
    point to a QEMU guest): 2.82x, within 20%. The 64 KiB figure is not (3.66x, +53%)."""
    rows = table.set_index("figure")
    pmd = rows.loc["redirtied-pmd-skip"]
    assert pmd["predicted_emulation"] == pytest.approx(2.82, rel=0.02)
    assert abs(pmd["error_emulation"]) <= 0.20
    assert rows.loc["batched-lazyfree-64k", "error_emulation"] == pytest.approx(0.53, abs=0.02)


def test_the_server_figure_on_the_server_table(table) -> None:
    """a67fe41e214f's 32-core arm64 server figure (4.09x) priced with arm64-server.toml, the
    shipped table of broadcast TLBI and DSB costs published for a many-core server (SOURCES.md
    A1; chosen by the figure's stated machine, not fitted to it): 3.31x, 19% below. Only that
    figure states a server; the others have no machine-class table."""
    rows = table.set_index("figure")
    server = rows.loc["batched-file-arm64"]
    assert server["machine_table"] == "arm64-server.toml"
    assert server["predicted_machine"] == pytest.approx(3.31, rel=0.02)
    assert server["error_machine"] == pytest.approx(-0.19, abs=0.01)
    assert rows["predicted_machine"].notna().sum() == 1
    assert "with `arm64-server.toml`" in markdown(table)
