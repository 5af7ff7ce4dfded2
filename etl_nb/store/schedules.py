"""Schedules in the run store: add, list, get, pause, resume, remove.

A schedule runs one notebook on a cron expression in an IANA time zone,
with parameters, a timeout, retries and alert targets. Each ``Schedule``
is JSON-ready through ``to_dict()`` (the next slot in its zone and in UTC,
the last run's status), which is what ``etl-nb schedule list --json`` prints
and what the server's ``GET schedules`` answers.

``ScheduleStore.add`` checks the cron expression, the zone and the alert
targets; the parameters are checked against the notebook by the caller
(``etl_nb.runs.add_schedule`` does both), since the store never reads
notebooks.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select, update

from etl_nb.errors import SpecError
from etl_nb.store.queue import insert_ignoring_duplicates
from etl_nb.store.runs import RunStore, aware, now
from etl_nb.store.schema import run_jobs, runs, schedule_slots, schedules
from etl_nb.store.slots import check_cron, next_slot, zone

ALERT_ON = ("failure", "always")


@dataclass(frozen=True)
class Schedule:
    """One schedule as stored, with the status of its last run."""

    id: str
    notebook: str
    pipeline: str
    cron: str
    timezone: str
    params: dict[str, Any]
    timeout: float | None
    retries: int
    alerts: list[str]
    alert_on: str
    paused: bool
    created_at: dt.datetime
    last_slot: dt.datetime | None
    last_run: dict[str, Any] | None = field(default=None)

    def next_slot(self, after: dt.datetime | None = None) -> dt.datetime:
        """The next slot after ``after`` (default now, or the last slot if later), in UTC."""
        after = after or now()
        if self.last_slot and self.last_slot > after:
            after = self.last_slot
        return next_slot(self.cron, zone(self.timezone), after)

    def to_dict(self, at: dt.datetime | None = None) -> dict[str, Any]:
        """A JSON-ready dict: the fields, ``next_slot`` in the zone and ``next_slot_utc`` (ISO 8601)."""
        upcoming = None if self.paused else self.next_slot(at)
        return {
            "id": self.id,
            "notebook": self.notebook,
            "pipeline": self.pipeline,
            "cron": self.cron,
            "timezone": self.timezone,
            "params": self.params,
            "timeout": self.timeout,
            "retries": self.retries,
            "alerts": self.alerts,
            "alert_on": self.alert_on,
            "paused": self.paused,
            "created_at": self.created_at.isoformat(),
            "last_slot": self.last_slot.isoformat() if self.last_slot else None,
            "next_slot": upcoming.astimezone(zone(self.timezone)).isoformat() if upcoming else None,
            "next_slot_utc": upcoming.isoformat() if upcoming else None,
            "last_run": self.last_run,
        }


class ScheduleStore:
    """The schedules kept in a run store (default: ``RunStore()``'s)."""

    def __init__(self, store: RunStore | None = None) -> None:
        self.store = store or RunStore()
        self.engine = self.store.engine

    def add(
        self,
        notebook: str,
        cron: str,
        *,
        pipeline: str,
        timezone: str = "UTC",
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
        retries: int = 0,
        alerts: list[str] | None = None,
        alert_on: str = "failure",
        since: dt.datetime | None = None,
    ) -> Schedule:
        """Store a new schedule and return it; ``SpecError`` for a bad cron, zone or option.

        Slots start after ``since`` (default now): a schedule never runs the
        slots from before it existed.
        """
        cron = check_cron(cron)
        zone(timezone)
        if alert_on not in ALERT_ON:
            raise SpecError(f"--alert-on takes 'failure' or 'always', not '{alert_on}'.")
        if retries < 0 or retries > 100:
            raise SpecError(f"--retries takes a number from 0 to 100, not {retries}.")
        if timeout is not None and timeout <= 0:
            raise SpecError("--timeout must be a positive duration such as 30m.")
        for target in alerts or []:
            check_alert_target(target)
        created = now()
        schedule_id = uuid.uuid4().hex[:12]
        with self.engine.begin() as conn:
            conn.execute(
                schedules.insert().values(
                    id=schedule_id,
                    notebook=notebook,
                    pipeline=pipeline,
                    cron=cron,
                    timezone=timezone,
                    params=params or {},
                    paused=False,
                    created_at=created,
                    timeout=timeout,
                    retries=retries,
                    alerts=list(alerts or []),
                    alert_on=alert_on,
                    last_slot=since or created,
                )
            )
        return self.get(schedule_id)

    def list(self) -> list[Schedule]:
        """Every schedule, oldest first, with its last run."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(schedules).order_by(schedules.c.created_at, schedules.c.id)).all()
        return [self._schedule(row._mapping) for row in rows]

    def get(self, schedule_id: str) -> Schedule:
        """One schedule by id or unique id prefix; ``SpecError`` naming the fix when there is none."""
        schedule_id = str(schedule_id).strip()
        query = select(schedules).limit(2)
        if schedule_id:
            query = query.where(schedules.c.id.startswith(schedule_id, autoescape=True))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all() if schedule_id else []
        if len(rows) != 1:
            which = "several schedules" if len(rows) > 1 else "no schedule"
            raise SpecError(f"'{schedule_id}' matches {which}. See 'etl-nb schedule list' for the ids.")
        return self._schedule(rows[0]._mapping)

    def pause(self, schedule_id: str) -> Schedule:
        """Stop starting runs of the schedule (runs already started go on)."""
        return self._set(schedule_id, paused=True)

    def resume(self, schedule_id: str) -> Schedule:
        """Start runs again from the next slot: the slots missed while paused are not made up."""
        found = self.get(schedule_id)
        if not found.paused:
            return found
        return self._set(found.id, paused=False, last_slot=now())

    def remove(self, schedule_id: str) -> Schedule:
        """Delete the schedule (its recorded runs stay in the history)."""
        found = self.get(schedule_id)
        with self.engine.begin() as conn:
            conn.execute(delete(schedules).where(schedules.c.id == found.id))
        return found

    def advance(self, schedule_id: str, slot: dt.datetime) -> None:
        """Persist ``slot`` as the schedule's last slot, never moving it back."""
        with self.engine.begin() as conn:
            conn.execute(
                update(schedules)
                .where(schedules.c.id == schedule_id)
                .where((schedules.c.last_slot.is_(None)) | (schedules.c.last_slot < slot))
                .values(last_slot=slot)
            )

    def set_last_run(self, schedule_id: str, run_id: str) -> None:
        """Remember the schedule's latest run."""
        with self.engine.begin() as conn:
            conn.execute(update(schedules).where(schedules.c.id == schedule_id).values(last_run_id=run_id))

    def _set(self, schedule_id: str, **values: Any) -> Schedule:
        found = self.get(schedule_id)
        with self.engine.begin() as conn:
            conn.execute(update(schedules).where(schedules.c.id == found.id).values(**values))
        return self.get(found.id)

    def _schedule(self, row: Any) -> Schedule:
        return Schedule(
            id=row["id"],
            notebook=row["notebook"],
            pipeline=row["pipeline"] or "",
            cron=row["cron"],
            timezone=row["timezone"],
            params=dict(row["params"] or {}),
            timeout=row["timeout"],
            retries=row["retries"] or 0,
            alerts=list(row["alerts"] or []),
            alert_on=row["alert_on"] or "failure",
            paused=bool(row["paused"]),
            created_at=aware(row["created_at"]) or now(),
            last_slot=aware(row["last_slot"]),
            last_run=self._last_run(row["id"]),
        )

    def _last_run(self, schedule_id: str) -> dict[str, Any] | None:
        query = (
            select(runs.c.id, runs.c.status, runs.c.started_at, runs.c.error)
            .join(run_jobs, run_jobs.c.run_id == runs.c.id)
            .where(run_jobs.c.schedule_id == schedule_id)
            .order_by(run_jobs.c.queued_at.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        started = aware(row.started_at)
        return {
            "id": row.id,
            "status": row.status,
            "started_at": started.isoformat() if started else None,
            "error": row.error,
        }


def check_alert_target(target: str) -> str:
    """``target`` if it is an http(s) webhook URL or a ``mailto:`` address; else ``SpecError``."""
    text = str(target).strip()
    lowered = text.lower()
    if lowered.startswith(("http://", "https://", "${")) or (lowered.startswith("mailto:") and "@" in text):
        return text
    raise SpecError(
        f"Alert target '{text}' is neither a webhook URL (https://...) nor an email (mailto:name@host). "
        "Secrets go in as ${VAR}."
    )


class SlotClaims:
    """The ``(schedule, slot)`` rows: inserting one is how a scheduler claims a slot.

    The primary key makes the claim atomic: of two schedulers inserting the
    same row at once (``INSERT ... ON CONFLICT DO NOTHING``), exactly one
    sees its row inserted and starts the slot.
    """

    def __init__(self, store: RunStore | None = None) -> None:
        self.store = store or RunStore()
        self.engine = self.store.engine

    def claim(self, schedule_id: str, slot: dt.datetime, owner: str, *, coalesced: int = 0) -> bool:
        """True for the one caller whose row was inserted."""
        statement = insert_ignoring_duplicates(self.engine, schedule_slots).values(
            schedule_id=schedule_id,
            slot=slot,
            claimed_by=owner,
            claimed_at=now(),
            outcome="claimed",
            coalesced=coalesced,
        )
        with self.engine.begin() as conn:
            if self.engine.dialect.name in ("mysql", "mariadb"):
                return conn.execute(statement).rowcount == 1
            # psycopg reports no rowcount for ON CONFLICT DO NOTHING: a returned row is the proof.
            inserted = conn.execute(statement.returning(schedule_slots.c.schedule_id)).first()
            return inserted is not None

    def settle(
        self,
        schedule_id: str,
        slot: dt.datetime,
        outcome: str,
        *,
        run_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Record what became of a claimed slot: ``started`` (with its run), ``skipped`` or ``failed``."""
        with self.engine.begin() as conn:
            conn.execute(
                update(schedule_slots)
                .where(schedule_slots.c.schedule_id == schedule_id, schedule_slots.c.slot == slot)
                .values(outcome=outcome, run_id=run_id, reason=reason)
            )

    def slots(self, schedule_id: str) -> list[dict[str, Any]]:
        """The claimed slots of a schedule, oldest first, JSON-ready."""
        query = (
            select(schedule_slots)
            .where(schedule_slots.c.schedule_id == schedule_id)
            .order_by(schedule_slots.c.slot)
        )
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        for row in rows:
            for key in ("slot", "claimed_at"):
                row[key] = (aware(row[key]) or now()).isoformat()
        return rows
