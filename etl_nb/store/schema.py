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

# --- the cache (engine/cache.py): each step's fingerprint per run, and resumed runs ---------

step_fingerprints = Table(
    "etl_step_fingerprints",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("step", String(512), primary_key=True),
    Column("pipeline", String(255), nullable=False),
    Column("digest", String(64), nullable=False),
    # code, options, params, connection and inputs: see engine/fingerprint.py
    Column("parts", JSON, nullable=False),
    Column("decision", String(16), nullable=False),  # ran | reused | skipped
    Column("reason", Text),
    Column("status", String(16), nullable=False),  # the step's status in that run
    Column("outcome", JSON),  # a check's result, a load's target as written: what a reuse repeats
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_etl_step_fingerprints_step", "pipeline", "step", "created_at"),
)

run_resumes = Table(
    "etl_run_resumes",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("resumed_from", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
