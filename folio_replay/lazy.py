"""Public names imported from their modules on first use (PEP 562 module ``__getattr__``), so
that importing a package costs nothing until a name is used."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(namespace: dict[str, Any], homes: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for the module whose globals are ``namespace``: a name of
    ``homes`` (name -> defining module) is imported on first use and kept in ``namespace``."""

    def getattr_(name: str) -> Any:
        if name in homes:
            value = getattr(importlib.import_module(homes[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")

    return getattr_
