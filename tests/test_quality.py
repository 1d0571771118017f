"""The project's habits, checked with every test run: one namespace, lint, format and types."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = [
    p
    for p in REPO.rglob("*.py")
    if not {".venv", ".git", "cache", "build"} & set(p.relative_to(REPO).parts)
]
# a top-level "parsers" or "replay" package must never load: the library is folio_replay.*
TOP_LEVEL = re.compile(r"^\s*(import (parsers|replay)\b|from (parsers|replay)\b)", re.M)


def test_no_module_imports_the_library_by_its_directory_name() -> None:
    offenders = [str(p.relative_to(REPO)) for p in SOURCES if TOP_LEVEL.search(p.read_text())]
    assert offenders == []


def test_layout_shows_the_architecture() -> None:
    """parsers/ and replay/ hold subpackages by job, each with its own __init__.py."""
    for package in (
        "parsers/text",
        "parsers/tracedat",
        "parsers/_native",
        "replay/reconstruct",
        "replay/models",
        "replay/costs",
        "folio_replay/capture",
        "folio_replay/commands",
        "folio_replay/present",
    ):
        assert (REPO / package / "__init__.py").is_file(), package


def _tool(name: str) -> list[str]:
    """The tool installed beside this Python (the test extra has it)."""
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
        return [found]
    return [str(path)]


@pytest.mark.parametrize(
    "args", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"]
)
def test_ruff(args: list[str]) -> None:
    done = subprocess.run([*_tool("ruff"), *args], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_on_the_library() -> None:
    done = subprocess.run(_tool("mypy"), cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
