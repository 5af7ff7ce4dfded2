"""Schema drift: how an extract's columns changed since its last good run.

The runner keeps each extract's columns and DuckDB types in its step's
``detail["columns"]`` (so the run store has them for every run); the next
run compares its own with those of the latest successful run. Pure
functions: no I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Drift:
    """Columns added, removed and retyped (``{name: (old type, new type)}``) since ``since_run``."""

    since_run: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    retyped: dict[str, tuple[str, str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.retyped)

    def describe(self) -> str:
        """The change in words: ``column added: note; retyped: id INTEGER -> VARCHAR``."""
        parts = []
        if self.added:
            parts.append(f"column{'s' if len(self.added) > 1 else ''} added: {', '.join(self.added)}")
        if self.removed:
            parts.append(f"column{'s' if len(self.removed) > 1 else ''} removed: {', '.join(self.removed)}")
        if self.retyped:
            parts.append(
                "retyped: " + ", ".join(f"{name} {old} -> {new}" for name, (old, new) in self.retyped.items())
            )
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """The drift as JSON for the run store (``detail["drift"]``)."""
        return {
            "since_run": self.since_run,
            "added": self.added,
            "removed": self.removed,
            "retyped": {name: list(types) for name, types in self.retyped.items()},
        }


def compare(since_run: str, before: Mapping[str, str], now: Mapping[str, str]) -> Drift:
    """How ``now``'s columns (name -> type) differ from ``before``'s, in column order."""
    return Drift(
        since_run=since_run,
        added=[name for name in now if name not in before],
        removed=[name for name in before if name not in now],
        retyped={
            name: (before[name], kind)
            for name, kind in now.items()
            if name in before and before[name] != kind
        },
    )
