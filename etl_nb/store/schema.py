"""The run store's tables (SQLAlchemy Core), shared by SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

runs = Table(
    "etl_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("pipeline", String(255), nullable=False),
    Column("status", String(16), nullable=False),  # running | success | failed
    Column("params", JSON, nullable=False, default=dict),
    Column("notebook", Text),  # the notebook that ran, when run from a notebook
    Column("output_notebook", Text),  # the executed copy kept for inspection
    Column("trigger", String(32), nullable=False, default="manual"),  # manual | schedule | backfill
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("seconds", Float),
    Column("rows", Integer),
    Column("error", Text),
    Index("ix_etl_runs_pipeline_started", "pipeline", "started_at"),
)

step_runs = Table(
    "etl_step_runs",
    metadata,
    Column("run_id", String(32), ForeignKey("etl_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("step", String(512), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("kind", String(16), nullable=False),  # extract | transform | check | load
    Column("status", String(16), nullable=False),  # success | failed | skipped | warned
    Column("rows", Integer),
    Column("seconds", Float),
    Column("error", Text),
    Column("detail", JSON),  # check failures, cache decisions, ...
)

incremental_state = Table(
    "etl_incremental_state",
    metadata,
    Column("pipeline", String(255), primary_key=True),
    Column("step", String(255), primary_key=True),
    Column("column_name", String(255), nullable=False),
    Column("value", JSON, nullable=False),  # {"type": ..., "value": ...} so types survive
    Column("run_id", String(32)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

schedules = Table(
    "etl_schedules",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("notebook", Text, nullable=False),
    Column("cron", String(128), nullable=False),
    Column("timezone", String(64), nullable=False, default="UTC"),
    Column("params", JSON, nullable=False, default=dict),
    Column("paused", Boolean, nullable=False, default=False),
    Column("next_run_at", DateTime(timezone=True)),
    Column("last_run_id", String(32)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# --- scheduling (etl_nb.store.queue, etl_nb.store.schedules) ------------------------------------
# Appended as separate tables (and columns at the end of etl_schedules, which nothing wrote
# before them) so that a store made by an earlier version gains them by create_all alone.

schedules.append_column(Column("pipeline", String(255)))
schedules.append_column(Column("timeout", Float))  # seconds a run may take
schedules.append_column(Column("retries", Integer, nullable=False, default=0))
schedules.append_column(Column("alerts", JSON))  # targets as written: ${VAR} stays unresolved
schedules.append_column(Column("alert_on", String(16), nullable=False, default="failure"))
schedules.append_column(Column("last_slot", DateTime(timezone=True)))  # slots come after it

run_jobs = Table(
    "etl_run_jobs",
    metadata,
    # What an executor needs to run a queued run, and the lease of the one running it.
    Column("run_id", String(32), ForeignKey("etl_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("backend", String(16), nullable=False, default="local"),  # local | celery
    Column("params", JSON, nullable=False, default=dict),  # the values to inject, as typed
    Column("timeout", Float),
    Column("schedule_id", String(32)),
    Column("scheduled_for", DateTime(timezone=True)),
    Column("backfill_id", String(32)),
    Column("backfill_value", String(64)),
    Column("attempt", Integer, nullable=False, default=1),
    Column("retries", Integer, nullable=False, default=0),  # further attempts after a failure
    Column("retry_of", String(32)),
    Column("not_before", DateTime(timezone=True)),  # a retry waits for its backoff
    Column("queued_at", DateTime(timezone=True), nullable=False),
    Column("lease_owner", String(128)),
    Column("lease_expires_at", DateTime(timezone=True)),
    Column("alerts", JSON),
    Column("alert_on", String(16)),
    Column("alert_results", JSON),  # one entry per target: delivered or why not
    Index("ix_etl_run_jobs_schedule", "schedule_id"),
)

schedule_slots = Table(
    "etl_schedule_slots",
    metadata,
    # One row per (schedule, slot): the unique key is what lets one scheduler only start a slot.
    Column("schedule_id", String(32), primary_key=True),
    Column("slot", DateTime(timezone=True), primary_key=True),
    Column("claimed_by", String(128), nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
    Column("outcome", String(16), nullable=False, default="claimed"),  # claimed | started | skipped
    Column("reason", Text),
    Column("run_id", String(32)),
    Column("coalesced", Integer, nullable=False, default=0),  # missed slots folded into this one
)

backfills = Table(
    "etl_backfills",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("notebook", Text, nullable=False),
    Column("param", String(255), nullable=False),
    Column("start", String(64), nullable=False),
    Column("end", String(64), nullable=False),
    Column("step", String(32), nullable=False),
    Column("params", JSON, nullable=False, default=dict),
    Column("values", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
