"""The ``folio-replay`` command: one sub-command per module in ``folio_replay.commands``.

Exit codes (:mod:`folio_replay.errors`): 0 ok, 1 a validation mismatch, 2 bad input (one line
``folio-replay: error: FILE:LINE: message``), 130 interrupted by SIGTERM, SIGINT or SIGHUP
(temporary outputs removed). Damage a run goes past is one line ``folio-replay: warning: ...``.
"""

from __future__ import annotations

import importlib
import re
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import click

from folio_replay import __version__
from folio_replay.errors import (
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    CompileNotice,
    InputError,
    InputWarning,
    Interrupted,
)
from folio_replay.outputs import forget_inputs, remove_temporaries

# Each command is a module in folio_replay/commands (its name with "_" for "-") exposing a click
# command called ``command``; a module is imported when its command runs (or for --help), so
# that a command starts without the imports of the others (pandas, dask, matplotlib).
COMMANDS = (
    "capture",
    "parse",
    "replay",
    "validate",
    "calibrate",
    "plot",
    "export-perfetto",
    "fleet",
)
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _error(message: str) -> None:
    click.echo(f"folio-replay: error: {message}", err=True)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Input warnings as one line on stderr (other warnings: Python's own format)."""
    if isinstance(message, InputWarning):
        click.echo(f"folio-replay: warning: {message.one_line()}", err=True)
    elif issubclass(category, CompileNotice):
        if sys.stderr.isatty():  # said on a terminal, as progress is; scripts see no change
            click.echo(f"folio-replay: note: {message}", err=True)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    """First signal: stop the run (``finally`` blocks run); a second one: leave at once."""
    for sig in SIGNALS:
        signal.signal(sig, _leave)
    raise Interrupted(signum)


def _leave(_signum: int, _frame: FrameType | None) -> None:
    remove_temporaries()
    sys.stderr.write("folio-replay: interrupted\n")
    sys.exit(EXIT_INTERRUPTED)


@contextmanager
def _signals_and_warnings() -> Iterator[None]:
    """Signal handlers (main thread only: Python's rule) and the warning format while a
    command runs (restored after)."""
    main_thread = threading.current_thread() is threading.main_thread()
    handlers = {sig: signal.signal(sig, _interrupt) for sig in SIGNALS} if main_thread else {}
    show = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", InputWarning)
            yield
    finally:
        warnings.showwarning = show
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


class _Group(click.Group):
    """A group that loads its commands on first use (click's lazy sub-commands) and turns bad
    input, refused outputs and I/O errors into one line and exit code 2, and a signal into
    exit code 130 without leftovers."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(f"folio_replay.commands.{cmd_name.replace('-', '_')}")
        return module.command

    def invoke(self, ctx: click.Context):
        forget_inputs()
        try:
            with _signals_and_warnings():
                return super().invoke(ctx)
        except InputError as err:
            _error(err.one_line())
        except click.BadParameter as err:
            path_type = isinstance(getattr(err.param, "type", None), click.Path)
            if isinstance(err, click.MissingParameter) or not path_type:
                raise  # usage errors: click's usage text
            _error(_path_problem(err))
        except (OSError, UnicodeDecodeError) as err:
            _error(str(err))
        except Interrupted:
            remove_temporaries()
            click.echo("folio-replay: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        remove_temporaries()
        sys.exit(EXIT_INPUT)


def _path_problem(err: click.BadParameter) -> str:
    """``PATH: what is wrong (OPTION)`` from click's message about a path parameter, e.g.
    ``File '/tmp/x' is a directory.``"""
    option = "/".join(err.param.opts) if err.param is not None else "argument"
    quoted = re.search(r"'([^']*)'", err.message)
    if quoted is None:
        return f"{option}: {err.message}"
    what = (err.message[: quoted.start()] + err.message[quoted.end() :]).split(None, 1)[-1]
    return f"{quoted[1]}: {what.rstrip('.')} ({option})"


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="folio-replay")
def main() -> None:
    """Replay reclaim of large folios from real kernel traces."""
