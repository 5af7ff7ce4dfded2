"""Slots from cron and an IANA zone: coalescing after downtime, DST gap and repeat each run once."""

from __future__ import annotations

import datetime as dt

from etl_nb.store.slots import latest_due, missed_between, next_slot, zone

UTC = dt.UTC
PARIS = zone("Europe/Paris")


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(UTC)


def slots_between(cron: str, start: str, end: str, step_minutes: int = 5) -> list[dt.datetime]:
    """Every slot a scheduler looking every few minutes from ``start`` to ``end`` would start."""
    last, moment, started = at(start), at(start), []
    while moment <= at(end):
        due = latest_due(cron, PARIS, last, moment)
        if due is not None:
            started.append(due)
            last = due
        moment += dt.timedelta(minutes=step_minutes)
    return started


def test_missed_slots_after_downtime_coalesce_into_the_latest() -> None:
    last = at("2026-06-01T06:00:00+02:00")

    due = latest_due("0 6 * * *", PARIS, last, at("2026-06-04T09:00:00+02:00"))

    assert due == at("2026-06-04T06:00:00+02:00")
    assert missed_between("0 6 * * *", PARIS, last, due) == 2  # the 2nd and the 3rd
    assert latest_due("0 6 * * *", PARIS, due, at("2026-06-04T09:00:00+02:00")) is None


def test_a_daily_slot_in_the_spring_gap_runs_once_at_the_shifted_time() -> None:
    started = slots_between("30 2 * * *", "2026-03-28T12:00:00+01:00", "2026-03-30T12:00:00+02:00")

    # 02:30 does not exist on 29 March: it runs once, at 03:30 CEST (the instant 02:30 CET would be).
    assert started == [at("2026-03-29T03:30:00+02:00"), at("2026-03-30T02:30:00+02:00")]


def test_a_daily_slot_in_the_autumn_repeat_runs_once() -> None:
    started = slots_between("30 2 * * *", "2026-10-24T12:00:00+02:00", "2026-10-26T12:00:00+01:00")

    # 02:30 happens twice on 25 October: it runs at the first one only.
    assert started == [at("2026-10-25T02:30:00+02:00"), at("2026-10-26T02:30:00+01:00")]


def test_hourly_slots_through_both_dst_changes_never_run_twice_at_one_instant() -> None:
    spring = slots_between("0 * * * *", "2026-03-29T00:30:00+01:00", "2026-03-29T05:30:00+02:00")
    autumn = slots_between("0 * * * *", "2026-10-25T00:30:00+02:00", "2026-10-25T04:30:00+01:00")

    assert [s.astimezone(PARIS).strftime("%H:%M%z") for s in spring] == [
        "01:00+0100",
        "03:00+0200",
        "04:00+0200",
        "05:00+0200",
    ]
    assert [s.astimezone(PARIS).strftime("%H:%M%z") for s in autumn] == [
        "01:00+0200",
        "02:00+0200",
        "03:00+0100",
        "04:00+0100",
    ]
    assert len(set(spring)) == len(spring)


def test_the_next_slot_is_in_the_schedules_zone() -> None:
    upcoming = next_slot("0 6 * * *", PARIS, at("2026-01-15T07:00:00+01:00"))

    assert upcoming.astimezone(PARIS).isoformat() == "2026-01-16T06:00:00+01:00"
    assert upcoming.isoformat() == "2026-01-16T05:00:00+00:00"
