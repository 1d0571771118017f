"""A command's output as named tables, rendered as text (rich), Markdown or JSON.

Each :class:`Table` holds ``data``, the rows scripts get (``--format json``: the report's column
names and raw values), and what people read: a ``title``, a ``shown`` frame of formatted cells
(omitted when ``None``) and ``lines`` of prose after it. Text is drawn by rich: colour only on a
terminal, plain text when piped. Markdown tables are pipe tables to paste into a patch's cover
letter.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import click
import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

__all__ = ["FORMATS", "Table", "format_option", "render", "rows"]

FORMATS = ("text", "markdown", "json")
# Off a terminal rich would wrap tables at 80 columns: pipes and files get wide lines instead.
PIPE_WIDTH = 200
_NUMBER = re.compile(r"[-+]?[0-9.]")


@dataclass
class Table:
    """One named table of a command's output."""

    name: str
    data: pd.DataFrame
    title: str = ""
    shown: pd.DataFrame | None = None
    lines: list[str] = field(default_factory=list)


def format_option(function: Callable) -> Callable:
    """The ``--format text|markdown|json`` option of every command that prints tables."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="text",
        show_default=True,
        help="text for the terminal, markdown to paste into a mail, json for scripts.",
    )(function)


def _plain(value: Any) -> Any:
    """A JSON value: numpy and pandas scalars as Python ones, NaN and NA as null."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """``frame``'s rows as JSON objects keyed by its column names."""
    return [
        {str(column): _plain(value) for column, value in zip(frame.columns, record)}
        for record in frame.itertuples(index=False, name=None)
    ]


def _json(tables: Sequence[Table]) -> str:
    return (
        json.dumps({table.name: rows(table.data) for table in tables}, indent=1, ensure_ascii=False)
        + "\n"
    )


def _visible(table: Table) -> bool:
    """Whether a table has anything to show people (its data alone goes to JSON only)."""
    return bool(table.lines) or (table.shown is not None and len(table.shown) > 0)


def _markdown(tables: Sequence[Table]) -> str:
    parts = []
    for table in filter(_visible, tables):
        if table.title:
            parts.append(f"**{table.title}**")
        if table.shown is not None and len(table.shown):
            parts.append(table.shown.to_markdown(index=False, tablefmt="github"))
        if table.lines:
            parts.append(
                "\n".join(line if line.startswith("- ") else f"- {line}" for line in table.lines)
            )
    return "\n\n".join(parts) + "\n"


def _numeric(cells: pd.Series) -> bool:
    """Whether a column holds numbers (aligned right), by its cells' first characters."""
    return all(_NUMBER.match(str(cell)) or str(cell) in ("", "-") for cell in cells)


def _rich_table(shown: pd.DataFrame) -> RichTable:
    drawn = RichTable(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in shown.columns:
        drawn.add_column(str(column), justify="right" if _numeric(shown[column]) else "left")
    for record in shown.itertuples(index=False, name=None):
        drawn.add_row(*(str(value) for value in record))
    return drawn


def _text(tables: Sequence[Table], console: Console) -> None:
    for number, table in enumerate(filter(_visible, tables)):
        if table.title:
            if number:
                console.print()
            console.print(Text(table.title, style="bold"))
        if table.shown is not None and len(table.shown):
            console.print(_rich_table(table.shown))
        for line in table.lines:
            console.print(line, highlight=False, markup=False, soft_wrap=True)


def render(tables: Sequence[Table], fmt: str = "text", console: Console | None = None) -> None:
    """Print ``tables`` on stdout in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "json":
        click.echo(_json(tables), nl=False)
    elif fmt == "markdown":
        click.echo(_markdown(tables), nl=False)
    else:
        console = console or Console()
        if not console.is_terminal:
            console = Console(width=PIPE_WIDTH, no_color=True)
        _text(tables, console)
