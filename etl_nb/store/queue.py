"""Queued runs and their leases, in the run store.

The run row is the truth, whatever carries the run (a local executor
process, a Celery message). A run is recorded ``queued`` with a job row
holding what an executor needs; an executor claims it with
``UPDATE ... WHERE status = 'queued'`` (so a second claim, or a redelivered
message, does nothing) and holds a lease it renews while the run lasts. A
run whose lease expired -- its worker was killed, its machine lost -- is
marked failed with ``worker lost`` by ``reap_expired``, never left running.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, select, update
from sqlalchemy.sql import Insert

from etl_nb._masking import redact
from etl_nb.store.runs import RunStore, aware, now
from etl_nb.store.schema import run_jobs, runs

LEASE_ENV = "ETL_NB_LEASE_SECONDS"
DEFAULT_LEASE_SECONDS = 60.0
WORKER_LOST = "worker lost"
ACTIVE = ("queued", "running")


def lease_seconds() -> float:
    """How long a lease lasts without renewal (``ETL_NB_LEASE_SECONDS``, default 60)."""
    try:
        return max(0.5, float(os.environ.get(LEASE_ENV) or DEFAULT_LEASE_SECONDS))
    except ValueError:
        return DEFAULT_LEASE_SECONDS


def executor_id() -> str:
    """Who holds a lease: host, process and a random part (a pid is reused after a restart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Job:
    """A queued (or running) run as an executor sees it."""

    run_id: str
    pipeline: str
    notebook: str
    status: str
    trigger: str
    backend: str
    params: dict[str, Any]
    timeout: float | None
    schedule_id: str | None
    scheduled_for: dt.datetime | None
    backfill_id: str | None
    attempt: int
    retries: int
    not_before: dt.datetime | None
    lease_owner: str | None
    lease_expires_at: dt.datetime | None
    alerts: list[str] | None
    alert_on: str | None


def insert_ignoring_duplicates(engine: Engine, table: Any) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` for the store's dialect (the row may exist: not an error)."""
    # Each dialect's module is imported when its store is used: PostgreSQL's and MySQL's cost about
    # 50 ms, which `etl-nb runs` on the default SQLite store need not pay.
    name = engine.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).on_conflict_do_nothing()
    if name == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table).on_conflict_do_nothing()
    if name in ("mysql", "mariadb"):
        from sqlalchemy.dialects import mysql

        return mysql.insert(table).prefix_with("IGNORE")
    raise NotImplementedError(
        f"The run store does not support {name} for scheduling; use PostgreSQL or SQLite."
    )


class RunQueue:
    """Queued runs, claims and leases in ``store`` (a ``RunStore``)."""

    def __init__(self, store: RunStore | None = None) -> None:
        self.store = store or RunStore()
        self.engine = self.store.engine

    def enqueue(  # noqa: PLR0913 - one keyword per column of etl_run_jobs
        self,
        run_id: str,
        *,
        pipeline: str,
        notebook: str,
        recorded_params: dict[str, Any],
        params: dict[str, Any],
        trigger: str,
        backend: str = "local",
        timeout: float | None = None,
        schedule_id: str | None = None,
        scheduled_for: dt.datetime | None = None,
        backfill_id: str | None = None,
        backfill_value: str | None = None,
        attempt: int = 1,
        retries: int = 0,
        retry_of: str | None = None,
        not_before: dt.datetime | None = None,
        alerts: list[str] | None = None,
        alert_on: str | None = None,
    ) -> None:
        """Record ``run_id`` as ``queued``, with what an executor needs, in one transaction."""
        queued = now()
        shown = {k: redact(v) if isinstance(v, str) else v for k, v in recorded_params.items()}
        with self.engine.begin() as conn:
            conn.execute(
                runs.insert().values(
                    id=run_id,
                    pipeline=pipeline,
                    status="queued",
                    params=shown,
                    notebook=notebook,
                    trigger=trigger,
                    started_at=queued,
                )
            )
            conn.execute(
                run_jobs.insert().values(
                    run_id=run_id,
                    backend=backend,
                    params=params,
                    timeout=timeout,
                    schedule_id=schedule_id,
                    scheduled_for=scheduled_for,
                    backfill_id=backfill_id,
                    backfill_value=backfill_value,
                    attempt=attempt,
                    retries=retries,
                    retry_of=retry_of,
                    not_before=not_before,
                    queued_at=queued,
                    alerts=alerts,
                    alert_on=alert_on,
                )
            )

    def job(self, run_id: str) -> Job | None:
        """The queued or recorded job of ``run_id``, or None when it has none."""
        query = (
            select(run_jobs, runs.c.pipeline, runs.c.notebook, runs.c.status, runs.c.trigger)
            .join(runs, runs.c.id == run_jobs.c.run_id)
            .where(run_jobs.c.run_id == run_id)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _job(row._mapping)

    def claim(self, run_id: str, owner: str) -> bool:
        """Take a queued run: True for exactly one caller, whatever the number of tries."""
        started = now()
        with self.engine.begin() as conn:
            taken = conn.execute(
                update(runs)
                .where(runs.c.id == run_id, runs.c.status == "queued")
                .values(status="running", started_at=started)
            ).rowcount
            if taken != 1:
                return False
            conn.execute(
                update(run_jobs)
                .where(run_jobs.c.run_id == run_id)
                .values(lease_owner=owner, lease_expires_at=started + dt.timedelta(seconds=lease_seconds()))
            )
        return True

    def renew(self, run_id: str, owner: str) -> bool:
        """Extend ``owner``'s lease on a running run; False if the run is no longer its own."""
        expires = now() + dt.timedelta(seconds=lease_seconds())
        with self.engine.begin() as conn:
            owned = conn.execute(
                update(run_jobs)
                .where(run_jobs.c.run_id == run_id, run_jobs.c.lease_owner == owner)
                .values(lease_expires_at=expires)
            ).rowcount
        return owned == 1

    def release(self, run_id: str) -> None:
        """Drop the lease of a finished run."""
        with self.engine.begin() as conn:
            conn.execute(update(run_jobs).where(run_jobs.c.run_id == run_id).values(lease_expires_at=None))

    def fail(self, run_id: str, error: str, *, only_if: tuple[str, ...] = (*ACTIVE, "failed")) -> bool:
        """Mark ``run_id`` failed with ``error`` (when its status is one of ``only_if``)."""
        finished = now()
        with self.engine.begin() as conn:
            row = conn.execute(select(runs.c.started_at, runs.c.status).where(runs.c.id == run_id)).first()
            if row is None or row.status not in only_if:
                return False
            started = aware(row.started_at) or finished
            changed = conn.execute(
                update(runs)
                .where(runs.c.id == run_id, runs.c.status.in_(only_if))
                .values(
                    status="failed",
                    error=redact(error),
                    finished_at=finished,
                    seconds=(finished - started).total_seconds(),
                )
            ).rowcount
            conn.execute(update(run_jobs).where(run_jobs.c.run_id == run_id).values(lease_expires_at=None))
        return changed == 1

    def reap_expired(self, at: dt.datetime | None = None) -> list[Job]:
        """Mark running runs whose lease expired as failed (``worker lost``); returns their jobs."""
        at = at or now()
        query = (
            select(run_jobs.c.run_id)
            .join(runs, runs.c.id == run_jobs.c.run_id)
            .where(
                runs.c.status == "running",
                run_jobs.c.lease_expires_at.is_not(None),
                run_jobs.c.lease_expires_at < at,
            )
        )
        with self.engine.connect() as conn:
            expired = [r.run_id for r in conn.execute(query)]
        lost: list[Job] = []
        for run_id in expired:
            # Checked again in the UPDATE: the executor may have renewed or finished meanwhile.
            with self.engine.begin() as conn:
                changed = conn.execute(
                    update(runs)
                    .where(
                        runs.c.id == run_id,
                        runs.c.status == "running",
                        runs.c.id.in_(
                            select(run_jobs.c.run_id).where(
                                run_jobs.c.run_id == run_id, run_jobs.c.lease_expires_at < at
                            )
                        ),
                    )
                    .values(
                        status="failed",
                        error=f"{WORKER_LOST}: the process running it stopped renewing its lease "
                        "(killed, or its machine lost); see docs/scale.md.",
                        finished_at=at,
                    )
                ).rowcount
            if changed == 1:
                job = self.job(run_id)
                if job is not None:
                    lost.append(job)
        return lost

    def is_active(self, pipeline: str) -> bool:
        """Whether a run of ``pipeline`` is queued or running (a new slot would overlap it)."""
        query = select(runs.c.id).where(and_(runs.c.pipeline == pipeline, runs.c.status.in_(ACTIVE))).limit(1)
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None

    def status(self, run_id: str) -> str | None:
        """The run's status, or None when there is no such run."""
        with self.engine.connect() as conn:
            value = conn.execute(select(runs.c.status).where(runs.c.id == run_id)).scalar_one_or_none()
        return None if value is None else str(value)

    def record_alerts(self, run_id: str, results: list[dict[str, Any]]) -> None:
        """Keep what became of the run's alerts (delivered, or why not) on its job."""
        with self.engine.begin() as conn:
            conn.execute(update(run_jobs).where(run_jobs.c.run_id == run_id).values(alert_results=results))

    def alert_results(self, run_id: str) -> list[dict[str, Any]] | None:
        """What became of the run's alerts, or None when none was sent."""
        with self.engine.connect() as conn:
            value = conn.execute(
                select(run_jobs.c.alert_results).where(run_jobs.c.run_id == run_id)
            ).scalar_one_or_none()
        return None if value is None else list(value)


def _job(row: Any) -> Job:
    return Job(
        run_id=row["run_id"],
        pipeline=row["pipeline"],
        notebook=row["notebook"],
        status=row["status"],
        trigger=row["trigger"],
        backend=row["backend"],
        params=dict(row["params"] or {}),
        timeout=row["timeout"],
        schedule_id=row["schedule_id"],
        scheduled_for=aware(row["scheduled_for"]),
        backfill_id=row["backfill_id"],
        attempt=row["attempt"],
        retries=row["retries"],
        not_before=aware(row["not_before"]),
        lease_owner=row["lease_owner"],
        lease_expires_at=aware(row["lease_expires_at"]),
        alerts=list(row["alerts"]) if row["alerts"] else None,
        alert_on=row["alert_on"],
    )


def visibility_timeout() -> float:
    """Seconds before Redis redelivers an unacknowledged message (``ETL_NB_VISIBILITY_TIMEOUT``, 12 h).

    It must exceed the longest run timeout, or a running run's message is
    delivered again (harmlessly, as the run is claimed, but wastefully).
    """
    try:
        return float(os.environ.get("ETL_NB_VISIBILITY_TIMEOUT") or 43200)
    except ValueError:
        return 43200.0
