"""``${VAR}`` secret references: resolved late, never shown.

A reference is resolved from the environment (or a ``.env`` file) only when a
connection opens. Each resolved value is remembered so that ``redact`` can
strip it from any text that leaves the process: errors, logs, the run store.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import make_url

SECRET_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
MASK = "***"

_known_secrets: set[str] = set()
_lock = threading.Lock()
# A password inside a URL (scheme://user:password@host) is a secret even
# when the user wrote it literally instead of as ${VAR}.
# The password stops at '/': a port and path are not a password (https://h:8080/x?to=a@b.c).
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]+:)(?P<pw>[^@\s/]+)(?=@)")


def references(text: str) -> list[str]:
    """The variable names that ``text`` refers to as ``${VAR}``."""
    return SECRET_REF.findall(text)


def resolve(text: str, env_file: Path | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Replace each ``${VAR}`` in ``text`` with its value and remember the value.

    Raises ``KeyError`` naming the first variable that is not set.
    """
    from dotenv import dotenv_values

    env: dict[str, str | None] = {}
    if env_file is not None and env_file.is_file():
        env.update(dotenv_values(env_file))
    env.update(os.environ if environ is None else environ)

    def substitute(match: re.Match[str]) -> str:
        value = env.get(match.group(1))
        if value is None:
            raise KeyError(match.group(1))
        remember(value)
        return value

    return SECRET_REF.sub(substitute, text)


def remember(value: str) -> None:
    """Mark ``value`` as secret so that ``redact`` hides it from now on."""
    # Very short values (a one-letter password) would mask ordinary text.
    if len(value) >= 3:
        with _lock:
            _known_secrets.add(value)


def redact(text: str) -> str:
    """``text`` with every known secret and every URL password masked."""
    with _lock:
        secrets = sorted(_known_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)


def safe_url(url: str) -> str:
    """A database URL fit for display: password hidden, secrets masked."""
    try:
        return redact(make_url(url).render_as_string(hide_password=True))
    except Exception:  # not a SQLAlchemy URL: a path or an http address
        return redact(url)
