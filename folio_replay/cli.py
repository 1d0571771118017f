"""The ``folio-replay`` command: one sub-command per module in ``folio_replay.commands``."""

from __future__ import annotations

import importlib
import sys

import click

from folio_replay import __version__
from folio_replay.errors import InputError

# Each name is a module in folio_replay/commands exposing a click command called ``command``.
COMMANDS = ("capture", "parse", "replay", "validate", "calibrate")


class _Group(click.Group):
    """A group that turns :class:`InputError` and I/O errors into one line and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except InputError as err:
            click.echo(f"folio-replay: error: {err.one_line()}", err=True)
            sys.exit(2)
        except (OSError, UnicodeDecodeError) as err:
            click.echo(f"folio-replay: error: {err}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="folio-replay")
def main() -> None:
    """Replay reclaim of large folios from real kernel traces."""


for _name in COMMANDS:
    main.add_command(importlib.import_module(f"folio_replay.commands.{_name}").command)
