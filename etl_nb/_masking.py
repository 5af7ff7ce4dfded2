"""Masking of secrets in text that leaves the process.

Every resolved ``${VAR}`` value is remembered here, and ``redact`` strips the
remembered values (and any password written inside a URL) from errors, logs,
the run store and executed notebooks. This module imports nothing from
etl_nb, so every other module, ``errors`` included, can use it.
"""

from __future__ import annotations

import re
import threading

MASK = "***"

_known_secrets: set[str] = set()
_lock = threading.Lock()
# A password inside a URL (scheme://user:password@host) is a secret even
# when the user wrote it literally instead of as ${VAR}.
# The password stops at '/': a port and path are not a password (https://h:8080/x?to=a@b.c).
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]+:)(?P<pw>[^@\s/]+)(?=@)")


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
