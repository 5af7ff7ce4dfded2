"""SQL text: identifier quoting for DuckDB SQL, the one copy.

Every module that writes a DuckDB identifier into SQL (the runner, checks,
connectors staging into DuckDB) quotes it here.
"""

from __future__ import annotations


def quote(name: str) -> str:
    """``name`` as a quoted DuckDB SQL identifier (``"`` doubled inside)."""
    return '"' + name.replace('"', '""') + '"'
