"""Options that several commands share: which models, arches and cost table to replay with."""

from __future__ import annotations

from collections.abc import Callable

import click

from folio_replay.replay.archs import ARCHS
from folio_replay.replay.models import MODELS

__all__ = ["costs_option", "replay_options"]

costs_option = click.option(
    "--costs",
    type=click.Path(exists=True, dir_okay=False),
    help="A cost table (TOML) to use instead of the shipped one of its arch.",
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
