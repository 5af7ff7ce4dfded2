"""Masking of secrets in text that leaves the process.

Every resolved ``${VAR}`` value is remembered here, and ``redact`` strips the
remembered values (and any password written inside a URL) from errors, logs,
the run store and executed notebooks. A value is masked in every form it takes
in text: as written, without a trailing newline, and escaped the way reprs,
JSON and URLs escape it (a token ending in ``\\n`` appears as ``...\\\\n`` in
``Illegal header value b'Bearer ...\\\\n'``). This module imports nothing from
etl_nb, so every other module, ``errors`` included, can use it.
"""

from __future__ import annotations

import json
import re
import threading
from urllib.parse import quote, quote_plus

MASK = "***"

# Very short values (a one-letter password) would mask ordinary text.
_MIN_LENGTH = 3

_known_secrets: set[str] = set()
_lock = threading.Lock()
# A password inside a URL (scheme://user:password@host) is a secret even
# when the user wrote it literally instead of as ${VAR}.
# The password stops at '/': a port and path are not a password (https://h:8080/x?to=a@b.c).
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]+:)(?P<pw>[^@\s/]+)(?=@)")


def _escaped_forms(value: str) -> set[str]:
    """``value`` as it can appear in text: raw, repr-, bytes-repr-, JSON- and URL-escaped."""
    forms = {value}
    for _ in range(2):  # an error quoting a repr escapes twice ("...\\\\n")
        for text in list(forms):
            forms.add(repr(text)[1:-1])
            forms.add(repr(text.encode("utf-8", "backslashreplace"))[2:-1])
            forms.add(json.dumps(text)[1:-1])
            forms.add(json.dumps(text, ensure_ascii=False)[1:-1])
    forms |= {quote(value, safe=""), quote_plus(value, safe=""), quote(value)}
    return forms


def _variants(value: str) -> set[str]:
    """Every form of ``value`` to mask, including the value without surrounding whitespace."""
    variants = _escaped_forms(value)
    stripped = value.strip()
    if stripped != value:
        variants |= _escaped_forms(stripped)
    return {v for v in variants if len(v) >= _MIN_LENGTH}


def remember(value: str) -> None:
    """Mark ``value`` as secret so that ``redact`` hides it, in every form, from now on."""
    if len(value.strip()) >= _MIN_LENGTH:
        variants = _variants(value)
        with _lock:
            _known_secrets.update(variants)


def redact(text: str) -> str:
    """``text`` with every known secret (in each of its forms) and every URL password masked."""
    with _lock:
        secrets = sorted(_known_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)


def holds_secret(text: str) -> bool:
    """Whether ``text`` shows a known secret or a URL password (so ``redact`` would change it)."""
    return redact(text) != text
