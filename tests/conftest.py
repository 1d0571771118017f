"""Shared test fixtures: the CLI, and copies of real bundles to damage or extend."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from folio_replay.cli import main


@pytest.fixture
def cli() -> Callable[..., Result]:
    """Run ``folio-replay ARGS...`` in process (exceptions caught, output captured)."""

    def run(*args: str | Path) -> Result:
        return CliRunner().invoke(main, [str(arg) for arg in args])

    return run


@pytest.fixture
def bundle_copy(tmp_path: Path) -> Callable[[Path], Path]:
    """A copy of a real bundle in a temporary directory, to damage or extend."""

    def copy(source: Path) -> Path:
        target = tmp_path / source.name
        shutil.copytree(source, target)
        return target

    return copy
