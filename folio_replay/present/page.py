"""One self-contained HTML page to share: the summary tables and the plots as inline SVG."""

from __future__ import annotations

import html
import io
from collections.abc import Sequence

from matplotlib import rc_context
from matplotlib.figure import Figure

from folio_replay.present.tables import Table

__all__ = ["html_page", "svg"]

_STYLE = """
body { font-family: sans-serif; max-width: 70em; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { padding: 0.2em 0.8em; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 1em 0; }
h2 { font-size: 1.1em; margin-top: 1.5em; }
"""


def svg(figure: Figure) -> str:
    """``figure`` as an SVG element (without the XML prologue), its text kept as text
    (searchable, selectable, smaller), not glyph outlines."""
    out = io.StringIO()
    with rc_context({"svg.fonttype": "none"}):
        figure.savefig(out, format="svg")
    text = out.getvalue()
    return text[text.index("<svg") :]


def _table_html(table: Table) -> str:
    parts = []
    if table.title and (table.lines or (table.shown is not None and len(table.shown))):
        parts.append(f"<h2>{html.escape(table.title)}</h2>")
    if table.shown is not None and len(table.shown):
        parts.append(table.shown.to_html(index=False, border=0))
    if table.lines:
        items = "".join(f"<li>{html.escape(line.removeprefix('- '))}</li>" for line in table.lines)
        parts.append(f"<ul>{items}</ul>")
    return "\n".join(parts)


def html_page(title: str, tables: Sequence[Table], figures: Sequence[tuple[str, Figure]]) -> str:
    """A page: ``title``, the tables as people read them, then each figure with its caption."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    body += [_table_html(table) for table in tables]
    body += [
        f"<figure>{svg(figure)}<figcaption>{html.escape(caption)}</figcaption></figure>"
        for caption, figure in figures
    ]
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
