"""``${VAR}`` secret references: resolved late, never shown.

A reference is resolved from the environment (or a ``.env`` file) only when a
connection opens. Each resolved value is remembered (``_masking``) so that
``redact`` can strip it from any text that leaves the process.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values
from sqlalchemy.engine import make_url

from etl_nb._masking import MASK, redact, remember
from etl_nb.errors import MissingSecret

__all__ = ["MASK", "SECRET_REF", "references", "resolve", "safe_url"]

# The one compiled ``${VAR}`` pattern: the magics, the reader and export all use it.
SECRET_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def references(text: str) -> list[str]:
    """The variable names that ``text`` refers to as ``${VAR}``."""
    return SECRET_REF.findall(text)


def resolve(
    text: str,
    env_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    connection: str | None = None,
) -> str:
    """Replace each ``${VAR}`` in ``text`` with its value and remember the value.

    Raises ``MissingSecret`` (a ``ConnectorError`` naming ``connection`` and
    the variable, with the fix) for the first variable that is not set.
    """
    env: dict[str, str | None] = {}
    if env_file is not None and env_file.is_file():
        env.update(dotenv_values(env_file))
    env.update(os.environ if environ is None else environ)

    def substitute(match: re.Match[str]) -> str:
        value = env.get(match.group(1))
        if value is None:
            raise MissingSecret(match.group(1), connection=connection)
        remember(value)
        return value

    return SECRET_REF.sub(substitute, text)


def safe_url(url: str) -> str:
    """A database URL fit for display: password hidden, secrets masked."""
    try:
        return redact(make_url(url).render_as_string(hide_password=True))
    except Exception:  # not a SQLAlchemy URL: a path or an http address
        return redact(url)
