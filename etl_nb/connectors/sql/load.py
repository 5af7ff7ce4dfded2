"""Loads: stage the step's rows beside the target, then make them visible in one commit.

``write`` checks the rows against the target (merge key, column types),
creates a staging table and fills it (``stage``, a hook PostgreSQL's
transport overrides; elsewhere ``stage_rows`` fills it). The returned ``StagedTable`` commits the
dialect's ``CommitPlan`` (replace, append or merge) or drops the staging
table on ``abort``. A missing table (and its schema) is created from the
step's columns; a column added upstream is added to the target.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import duckdb
import sqlalchemy as sa

from etl_nb._logging import get_logger
from etl_nb.connectors.base import WriteRequest, count_rows, merge_counts
from etl_nb.connectors.sql.connection import SqlConnection
from etl_nb.connectors.sql.dialects import BATCH_ROWS, CommitPlan, TargetTable
from etl_nb.connectors.sql.errors import db_errors
from etl_nb.connectors.sql.types import (
    NULLS_AS,
    ColumnPlan,
    LoadShape,
    SaType,
    check_types,
    family_of,
)
from etl_nb.engine.sqltext import quote
from etl_nb.errors import ConnectorError, SpecError
from etl_nb.spec import LoadStep
from etl_nb.store.liveness import host_name, process_alive

log = get_logger(component="connectors.sql")

STAGING_PREFIX = "_etl_nb_stage_"
# A staging table is named by the process and host that write it ("_etl_nb_stage_PID_HOST_RUN_RANDOM",
# the host as a short hash: names are short in PostgreSQL), so that the next load to the schema can
# drop what a killed run left behind, and never what a live one is writing.
_STAGING = re.compile(STAGING_PREFIX + r"(?P<pid>[0-9]+)_(?P<host>[0-9a-f]{8})_[0-9a-z_]+\Z")


def _host_tag() -> str:
    return hashlib.sha1(host_name().encode()).hexdigest()[:8]


def staging_name(run_id: str) -> str:
    """A new staging table's name for run ``run_id`` in this process."""
    run = re.sub(r"[^0-9a-z]", "", run_id.lower())[-8:] or "run"
    return f"{STAGING_PREFIX}{os.getpid()}_{_host_tag()}_{run}_{uuid.uuid4().hex[:8]}"


_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*\Z")


@dataclass
class StagedTable:
    """Rows written to a staging table, waiting to be made visible in the target at once."""

    loader: SqlLoader
    step: str
    schema: str | None
    table: str
    staging: str
    rows: int = 0
    plan: CommitPlan = field(default_factory=CommitPlan)
    created_schema: bool = False
    done: bool = False
    counts: dict[str, Any] | None = None  # a merge's inserted/updated/unchanged, once committed

    def commit(self) -> None:
        """Run the commit plan in one transaction (where the database allows it)."""
        if self.done:
            return
        self.done = True
        self.loader.commit_staged(self)

    def abort(self) -> None:
        """Drop the staging table; the target stays as it was."""
        if self.done:
            return
        self.done = True
        self.loader.drop_staging(self)


class SqlLoader(SqlConnection):
    """The loading half of the SQL connector."""

    def check_load(self, load: LoadStep) -> None:
        """A database load needs ``--table [schema.]name``."""
        if load.table is None:
            raise SpecError(
                f"Load '{load.step}' writes to the database '{self.spec.name}': use --table NAME "
                "(or --table schema.name), not --path.",
                step=load.step,
            )
        parts = load.table.split(".")
        if len(parts) > 2 or not all(_TABLE_NAME.match(p) for p in parts):
            raise SpecError(
                f"Load '{load.step}': '{load.table}' is not a table name. Write --table name or "
                "--table schema.name (letters, digits, underscores).",
                step=load.step,
            )

    def target(self, load: LoadStep) -> tuple[str | None, str]:
        """The load's schema (or None for the default) and table name."""
        assert load.table is not None
        schema, _, table = load.table.rpartition(".")
        return (schema or self.default_schema), table

    def qualified(self, schema: str | None, table: str) -> str:
        """``schema.table`` quoted for this database."""
        return self.dialect.qualified(schema, table)

    def write(self, request: WriteRequest) -> StagedTable:
        """Check the rows against the target, stage them; nothing is visible before ``commit``."""
        load = request.load
        schema, table = self.target(load)
        # Binding the step's SQL (a fused transform's, say) may fail here: a ConnectorError
        # lets the engine blame the step whose SQL it is.
        with self.db_errors("the load", load.step, table=load.table):
            plans = self.plan(request)
            _check_key_columns(request, load)
        if not self.scans_rows_once:
            _check_keys(request, load)
        found = self._inspect(load, schema, table)
        # Columns without a type (no rows, or NULL in every row) take the target's, replace too.
        untyped = any(p.family == "null" for p in plans)
        plans = self._typed_nulls(plans, found.columns)
        if found.exists and load.mode != "replace":
            check_types(load, plans, found.columns)
        self.sweep_dead_staging(schema, load.step)
        staging = staging_name(request.run_id)
        shape = LoadShape(
            schema, table, staging, load.mode, found.exists, plans, list(load.key), found.columns
        )
        staged = StagedTable(self, load.step, schema, table, staging)
        with self.db_errors(
            "the load", load.step, table=load.table, on_error=lambda: self.drop_staging(staged)
        ):
            self.stage(request, shape, staged, found.schema_exists)
            if not found.exists and untyped and staged.rows == 0:
                # No rows and no types (a first, empty extract from SQLite): a table made now
                # would be all text and refuse the first real rows. Make it when they come.
                self.drop_staging(staged)
                staged.done = True  # nothing to commit, nothing to abort
                return staged
            self._finish_staging(load, shape)
            staged.plan = self.dialect.commit_plan(shape)
            if load.mode == "merge" and not shape.exists:  # a new table: every row is new
                staged.counts = merge_counts(staged.rows, 0, 0)
            if shape.exists and shape.mode != "replace" and shape.added:
                # Said in the step's detail: the target gains columns it did not have.
                staged.counts = {"columns_added": [p.name for p in shape.added]}
        return staged

    def preview(self, request: WriteRequest) -> dict[str, Any]:
        """What the load would do, writing nothing to the target (``--dry-run``).

        A merge into an existing table stages the rows beside it (the keys are
        checked as for a real merge), runs the merge's own counting query and
        drops the staging table: the target is never touched.
        """
        load = request.load
        schema, table = self.target(load)
        with self.db_errors("the dry-run", load.step, table=load.table):
            _check_key_columns(request, load)
        found = self._inspect(load, schema, table)
        if load.mode == "merge" and found.exists:
            staged = self.write(request)
            try:
                counts = self.dialect.count(staged.plan)
            finally:
                staged.abort()
            return {**(counts or merge_counts(0, 0, 0)), **(staged.counts or {})}
        if not self.scans_rows_once:
            _check_keys(request, load)
        rows = count_rows(request)
        if load.mode == "merge":
            return merge_counts(rows, 0, 0)
        before = self._count_target(load, schema, table) if found.exists else 0
        if load.mode == "append":
            return {"rows_added": rows, "rows_before": before, "rows_after": before + rows}
        return {"rows_before": before, "rows_after": rows}

    def _count_target(self, load: LoadStep, schema: str | None, table: str) -> int:
        with (
            self.connect("the dry-run", load.step) as conn,
            self.db_errors("the dry-run", load.step, table=load.table),
        ):
            counted = conn.execute(sa.text(f"SELECT count(*) FROM {self.qualified(schema, table)}"))
            return int(counted.scalar() or 0)

    def target_state(self, load: LoadStep) -> dict[str, Any] | None:
        """Whether the target table exists, and its row count."""
        schema, table = self.target(load)
        with self.connect("the load's target", load.step) as conn:
            if not sa.inspect(conn).has_table(table, schema=schema):
                return {"exists": False}
            rows = conn.execute(sa.text(f"SELECT count(*) FROM {self.qualified(schema, table)}")).scalar()
        return {"exists": True, "rows": int(rows or 0)}

    def plan(self, request: WriteRequest) -> list[ColumnPlan]:
        """How each of the step's columns travels into this database."""
        keys = set(request.load.key)
        return [
            self.dialect.plan_column(name, dtype, key=name in keys)
            for name, dtype in zip(request.relation.columns, request.relation.types, strict=True)
        ]

    def _inspect(self, load: LoadStep, schema: str | None, table: str) -> TargetTable:
        with (
            self.connect("the load", load.step) as conn,
            self.db_errors("the load", load.step, table=load.table),
        ):
            return self.dialect.describe(conn, schema, table)

    def _typed_nulls(self, plans: list[ColumnPlan], target_columns: Mapping[str, SaType]) -> list[ColumnPlan]:
        """Columns of NULLs take the type of the target column they go to (else text)."""
        typed = []
        for plan in plans:
            if plan.family != "null":
                typed.append(plan)
                continue
            target = target_columns.get(plan.name)
            duck = NULLS_AS.get(family_of(target) or "", "VARCHAR") if target is not None else "VARCHAR"
            again = self.dialect.plan_column(plan.name, duckdb.type(duck))
            typed.append(replace(again, wire=f"CAST({quote(plan.name)} AS {duck})"))
        return typed

    def stage(
        self, request: WriteRequest, shape: LoadShape, staged: StagedTable, schema_exists: bool
    ) -> None:
        """Hook: create the staging table (and a missing schema), then fill it (``stage_rows``)."""
        self.make_staging(request.load, shape, staged, schema_exists)
        staged.rows = self.stage_rows(request, shape, staging_wire(shape))

    def make_staging(
        self, load: LoadStep, shape: LoadShape, staged: StagedTable, schema_exists: bool
    ) -> None:
        """Create the load's schema if it is missing, then the staging table of ``shape``."""
        if not schema_exists and shape.schema is not None:
            self.dialect.run([sa.schema.CreateSchema(shape.schema, if_not_exists=True)])
            staged.created_schema = True
        self._create_staging(load, shape)

    def _finish_staging(self, load: LoadStep, shape: LoadShape) -> None:
        if (
            load.mode == "merge"
            and self.dialect.key_after_rows
            and (not shape.exists or self.scans_rows_once)
        ):
            # Building the key's index once, after the rows, is faster than row by row; on
            # the staged rows of an existing target it is the uniqueness check.
            self._add_staging_key(load, shape, f"{shape.staging if shape.exists else shape.table}_pkey")

    def _create_staging(self, load: LoadStep, shape: LoadShape) -> None:
        # Where the keys are checked on the staged rows, a NULL key is found by that check
        # (with the count the user needs), not refused by the copy.
        required = set() if self.scans_rows_once else set(load.key)
        columns: list[Any] = [
            sa.Column(p.name, p.stage, nullable=p.name not in required, autoincrement=False)
            for p in shape.plans
        ]
        if load.mode == "merge" and not shape.exists and not self.dialect.key_after_rows:
            # A merge target made here gets its key, so the next merge can match on it.
            columns.append(sa.PrimaryKeyConstraint(*load.key, name=f"{shape.table}_pkey"))
        staging_table = sa.Table(
            shape.staging,
            sa.MetaData(),
            *columns,
            schema=shape.schema,
            prefixes=self.dialect.staging_prefixes(shape),
        )
        self.dialect.run([sa.schema.CreateTable(staging_table)])

    def staging_table(self, shape: LoadShape) -> sa.Table:
        """The staging table of ``shape`` as SQLAlchemy sees it (to insert into it)."""
        columns = [sa.Column(p.name, p.stage) for p in shape.plans]
        return sa.Table(shape.staging, sa.MetaData(), *columns, schema=shape.schema)

    def stage_rows(self, request: WriteRequest, shape: LoadShape, wire: str) -> int:
        """Hook: fill the staging table from the step's rows (``SELECT wire``); the number of rows."""
        reader = request.connection.sql(f"SELECT {wire} FROM {request.table_sql}").to_arrow_reader(BATCH_ROWS)
        with self.engine.begin() as conn:
            return self.dialect.stage_rows(conn, reader, self.staging_table(shape))

    def _add_staging_key(self, load: LoadStep, shape: LoadShape, name: str) -> None:
        keys = ", ".join(self.dialect.quote(k) for k in load.key)
        stage = self.qualified(shape.schema, shape.staging)
        try:
            self.dialect.run(
                [f"ALTER TABLE {stage} ADD CONSTRAINT {self.dialect.quote(name)} PRIMARY KEY ({keys})"]
            )
        except Exception:
            if self.scans_rows_once:  # the keys were not checked before: say what is wrong with them
                self._check_staged_keys(load, stage)
            raise

    def _check_staged_keys(self, load: LoadStep, stage: str) -> None:
        """Raise the NULL or duplicate key error for rows already staged (what ``_check_keys`` says)."""
        quoted = [self.dialect.quote(k) for k in load.key]
        keys = ", ".join(quoted)
        example = quoted[0] if len(quoted) == 1 else f"ROW({keys})"
        null_test = " OR ".join(f"{k} IS NULL" for k in quoted)
        text = self.dialect.compile_type(sa.Text())
        with self.engine.connect() as conn:
            nulls = conn.execute(sa.text(f"SELECT count(*) FROM {stage} WHERE {null_test}")).scalar()
            dupes = conn.execute(
                sa.text(
                    f"SELECT count(*), min(k) FROM (SELECT CAST({example} AS {text}) AS k FROM {stage} "
                    f"WHERE NOT ({null_test}) GROUP BY {keys} HAVING count(*) > 1) d"
                )
            ).one()
        _raise_key_problem(load, int(nulls or 0), int(dupes[0] or 0), dupes[1])

    def commit_staged(self, staged: StagedTable) -> None:
        """Make ``staged`` visible in its target; on failure drop it and leave the target as it was."""
        target = f"{staged.schema + '.' if staged.schema else ''}{staged.table}"
        doing = self.doing(f"the commit into {target!r}", staged.step, target)
        # A commit is never retried as is: its staging table is gone.
        with db_errors(doing, on_error=lambda: self.drop_staging(staged), final=True):
            counts = self.dialect.commit(staged.plan, staged.step)
            staged.counts = {**(counts or {}), **(staged.counts or {})} or None
        log.info("load committed", step=staged.step, table=target, rows=staged.rows)

    def sweep_dead_staging(self, schema: str | None, step: str) -> None:
        """Drop the staging tables in ``schema`` that runs on this host left when they were killed."""
        try:
            with self.engine.connect() as conn:
                names = self.dialect.table_names(conn, schema, STAGING_PREFIX)
        except sa.exc.SQLAlchemyError:  # no such schema yet, or no right to list it: nothing to sweep
            return
        here = _host_tag()
        dead = [
            name
            for name in names
            if (found := _STAGING.match(name))
            and found["host"] == here
            and not process_alive(int(found["pid"]), host_name())
        ]
        if dead:
            log.info("dropping staging tables of dead runs", step=step, tables=dead)
            self.dialect.run_quietly(
                [f"DROP TABLE IF EXISTS {self.qualified(schema, t)}" for t in dead], step
            )

    def drop_staging(self, staged: StagedTable) -> None:
        """Drop the staging table (and a schema the load created), best effort."""
        statements = [f"DROP TABLE IF EXISTS {self.qualified(staged.schema, staged.staging)}"]
        if staged.created_schema and staged.schema:
            statements.append(self.dialect.drop_schema(staged.schema))
        self.dialect.run_quietly(statements, staged.step)


# --------------------------------------------------------------------------------------
# The merge key, checked in DuckDB before staging
# --------------------------------------------------------------------------------------


def staging_wire(shape: LoadShape) -> str:
    """The DuckDB select list that turns the step's columns into what the staging table takes."""
    return ", ".join(f"{p.wire} AS {quote(p.name)}" for p in shape.plans)


def _check_key_columns(request: WriteRequest, load: LoadStep) -> None:
    """The merge key must name columns of the step (binding the step's SQL, reading no rows)."""
    if load.mode != "merge":
        return
    columns = request.relation.columns
    missing = [k for k in load.key if k not in columns]
    if missing:
        raise SpecError(
            f"Merge key '{missing[0]}' is not a column of step '{load.step}'. Columns: {', '.join(columns)}.",
            step=load.step,
        )


def _check_keys(request: WriteRequest, load: LoadStep) -> None:
    """No NULL and no duplicate in the step's merge key (read in DuckDB, before staging)."""
    if load.mode != "merge":
        return
    keys = ", ".join(quote(k) for k in load.key)
    cur = request.connection.cursor()
    try:
        nulls = cur.execute(
            f"SELECT count(*) FROM {request.table_sql} WHERE "
            + " OR ".join(f"{quote(k)} IS NULL" for k in load.key)
        ).fetchall()[0][0]
        dupes = cur.execute(
            f"SELECT count(*), any_value(({keys})::VARCHAR) FROM "
            f"(SELECT {keys} FROM {request.table_sql} GROUP BY ALL HAVING count(*) > 1)"
        ).fetchall()[0]
    finally:
        cur.close()
    _raise_key_problem(load, int(nulls), int(dupes[0]), dupes[1])


def _raise_key_problem(load: LoadStep, nulls: int, dupes: int, example: Any) -> None:
    key_text = ", ".join(load.key)
    if nulls:
        raise ConnectorError(
            f"Cannot merge step '{load.step}' into '{load.table}': {nulls} row(s) have a NULL in the key "
            f"({key_text}). Filter them out or fill the key first (a check with 'not_null' finds them).",
            step=load.step,
        )
    if dupes:
        raise ConnectorError(
            f"Cannot merge step '{load.step}' into '{load.table}': {dupes} key value(s) of ({key_text}) "
            f"appear more than once in the step's rows (e.g. {example}). Make the key unique first "
            "(a check with 'unique' finds them).",
            step=load.step,
        )
