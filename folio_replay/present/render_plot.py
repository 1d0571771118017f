"""``folio-replay plot``: a report directory or a fleet dataset drawn into PNG, SVG or HTML,
written through :mod:`folio_replay.outputs`."""

from __future__ import annotations

from pathlib import Path

from matplotlib import rc_context
from matplotlib.figure import Figure

from folio_replay.errors import InputError
from folio_replay.outputs import replace_file
from folio_replay.present import plot
from folio_replay.present.fleet import fleet_tables, load_fleet
from folio_replay.present.page import html_page
from folio_replay.present.replay import summary
from folio_replay.present.report import ALL_TABLES, load_report
from folio_replay.present.tables import Table

__all__ = ["FORMATS", "write_plot"]

FORMATS = ("png", "svg", "html")
DPI = 100


def _panel(draw, source) -> Figure:
    """One panel on a figure of its own."""
    figure = Figure(figsize=(9, 4), layout="constrained")
    draw(figure.subplots(), source)
    return figure


def _drawn(source: Path) -> tuple[str, Figure, list[Table], list[tuple[str, Figure]]]:
    """(title, the whole figure, the summary tables, each panel on its own) of ``source``."""
    if (source / "predictions.parquet").is_file():
        report = load_report(source, ALL_TABLES)
        return (
            f"{report.name}: {report.release}",
            plot.report_figure(report),
            summary(report),
            [(caption, _panel(draw, report)) for caption, draw in plot.REPORT_PANELS],
        )
    fleet = load_fleet(source)
    figure = plot.fleet_figure(fleet)
    return f"fleet {source.name}", figure, fleet_tables(fleet), [("speedups", figure)]


def write_plot(source: str | Path, target: str | Path, force: bool = False) -> Path:
    """Draw ``source`` (a report directory or a fleet dataset) into ``target``, whose suffix
    (.png, .svg, .html) says the format."""
    source, target = Path(source), Path(target)
    fmt = target.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise InputError(target, f"unknown plot format {target.suffix!r}: use .png, .svg or .html")
    if not source.is_dir():
        raise InputError(source, "not a report directory or a fleet dataset")
    title, figure, tables, panels = _drawn(source)
    if fmt == "html":
        page = html_page(title, tables, panels)
        return replace_file(target, lambda tmp: tmp.write_text(page), force, inputs=[source])

    def write(tmp: Path) -> None:
        with rc_context({"svg.fonttype": "none"}):  # SVG text as text, as in the page
            figure.savefig(tmp, format=fmt, dpi=DPI)

    return replace_file(target, write, force, inputs=[source])
