"""Durations as users write them: ``90s``, ``30m``, ``1h30m``, ``1d``, or plain seconds."""

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
