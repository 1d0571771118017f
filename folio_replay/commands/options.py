"""Options that several commands share: which models, arches and cost table to replay with."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from folio_replay.replay.archs import ARCHS
from folio_replay.replay.models import MODELS

__all__ = ["CostTablePath", "costs_option", "replay_options"]


class CostTablePath(click.Path):
    """A cost table file, or the file name of a shipped one (``x86-xeon.toml``,
    ``arm64-server.toml``: replay/costs/) where no such file is in the current directory."""

    def __init__(self) -> None:
        super().__init__(exists=True, dir_okay=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from folio_replay.replay.costs.tables import COSTS_DIR  # not at start-up: parse

        shipped = COSTS_DIR / str(value)
        if not Path(value).exists() and Path(value).name == str(value) and shipped.is_file():
            return str(shipped)
        return super().convert(value, param, ctx)


costs_option = click.option(
    "--costs",
    type=CostTablePath(),
    help="A cost table (TOML) to use instead of the shipped one of its arch: a file, or a "
    "shipped table's name (x86-xeon.toml, arm64-server.toml, x86-tcg.toml, ...).",
)


def replay_options(function: Callable) -> Callable:
    """--model, --arch and --costs: what a replay runs through and prices with."""
    function = costs_option(function)
    function = click.option(
        "--arch",
        "archs",
        multiple=True,
        type=click.Choice(ARCHS),
        help="Architecture to price for (repeatable; default: all).",
    )(function)
    return click.option(
        "--model",
        "models",
        multiple=True,
        type=click.Choice(list(MODELS)),
        help="Model to replay through (repeatable; default: all default models).",
    )(function)
