"""Schedule slots: cron expressions (croniter) in an IANA zone (zoneinfo), through DST changes.

A cron expression describes wall-clock times. croniter walks them on naive
local times, so each wall time appears once; ``to_utc`` then maps each to
one instant with ``fold=0``. Hence a slot in the spring gap (02:30 on the
night clocks jump from 02:00 to 03:00 in Europe/Paris) becomes 03:30 CEST,
the instant 02:30 CET would have been, and runs once; a slot in the autumn
repeat (02:30 happens twice) runs at its first occurrence only; and two wall
times that map to one instant (02:00 and 03:00 on the spring night) are one
slot, because slots are keyed by their UTC instant.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter

from etl_nb.errors import SpecError, did_you_mean

_TICK = dt.timedelta(microseconds=1)


def check_cron(expr: str) -> str:
    """``expr`` if croniter reads it; else ``SpecError`` with an example."""
    expr = " ".join(str(expr).split())
    if not expr or not croniter.is_valid(expr):
        raise SpecError(
            f"'{expr}' is not a cron expression. Write five fields, minute hour day month weekday: "
            "'0 6 * * *' is every day at 06:00, '*/15 * * * *' every 15 minutes."
        )
    return expr


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ``SpecError`` with the closest name when there is none."""
    try:
        if name and "\x00" not in name and not name.startswith(("/", ".")):
            return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    raise SpecError(
        f"Unknown time zone '{name}'.{did_you_mean(name, sorted(available_timezones()))} "
        "Use an IANA name such as 'Europe/Paris' or 'UTC'."
    )


def to_utc(wall: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """The instant of naive local ``wall`` time in ``tz`` (first occurrence; gaps shift forward)."""
    return wall.replace(tzinfo=tz, fold=0).astimezone(dt.UTC)


def _wall(instant: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


def latest_due(cron: str, tz: ZoneInfo, after: dt.datetime, at: dt.datetime) -> dt.datetime | None:
    """The latest slot in ``(after, at]`` (UTC), or None: earlier missed slots coalesce into it."""
    walker = croniter(cron, _wall(at, tz) + _TICK)
    for _ in range(4):  # in the autumn repeat a wall time's first instant may lie after `at`
        instant = to_utc(walker.get_prev(dt.datetime), tz)
        if instant <= at:
            return instant if instant > after else None
    return None


def missed_between(cron: str, tz: ZoneInfo, after: dt.datetime, until: dt.datetime, cap: int = 10_000) -> int:
    """How many slots fall in ``(after, until)`` (the ones a coalesced run stands for), up to ``cap``."""
    walker = croniter(cron, _wall(after, tz))
    seen: set[dt.datetime] = set()
    while len(seen) < cap:
        instant = to_utc(walker.get_next(dt.datetime), tz)
        if instant >= until:
            break
        if instant > after:
            seen.add(instant)
    return len(seen)


def next_slot(cron: str, tz: ZoneInfo, after: dt.datetime) -> dt.datetime:
    """The first slot strictly after ``after`` (UTC)."""
    walker = croniter(cron, _wall(after, tz))
    while True:
        instant = to_utc(walker.get_next(dt.datetime), tz)
        if instant > after:
            return instant
