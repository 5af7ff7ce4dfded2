"""Package attributes imported when first asked for (a module ``__getattr__``, PEP 562).

A package's ``__init__`` names what it offers and where each name lives; the
module behind a name is imported on first use, so importing the package (or a
light module inside it) does not bring the heavy libraries the others need.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_attributes(package: str, homes: dict[str, str]) -> Callable[[str], Any]:
    """The ``__getattr__`` for ``package``: ``homes`` maps each name to the module that defines it."""

    def attribute(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        setattr(sys.modules[package], name, value)  # found directly next time
        return value

    return attribute
