"""Durations and counts as users write them: ``90s``, ``30m``, ``1h30m``, ``1d``; ``--limit 20``.

One home for both, for the CLI and the grammar alike; it imports only ``errors``
so that ``etl-nb --help`` stays light.
"""

from __future__ import annotations

import re

from etl_nb.errors import SpecError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str, *, what: str = "duration") -> float:
    """Seconds in ``text``; ``SpecError`` with examples when it is not a positive duration."""
    cleaned = str(text).strip().lower().replace(" ", "")
    seconds: float | None = None
    if re.fullmatch(r"\d+(\.\d+)?", cleaned):
        seconds = float(cleaned)
    elif cleaned and _PART.sub("", cleaned) == "":
        seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(cleaned))
    if seconds is None or seconds <= 0 or seconds > 366 * 86400:
        raise SpecError(f"The {what} '{text}' is not a duration: write 90s, 30m, 1h30m or 1d.")
    return seconds


# A count past this is a typo, and would overflow DuckDB's and the store's integers.
MAX_COUNT = 1_000_000_000


def count_problem(text: str) -> str | None:
    """Why ``text`` is not a whole number from 1 to ``MAX_COUNT`` (``'x' is ...``), or None when it is."""
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        return f"'{text}' is not a whole number above 0"
    if int(text) > MAX_COUNT:
        return f"'{text}' is too large: give at most {MAX_COUNT:,}"
    return None
