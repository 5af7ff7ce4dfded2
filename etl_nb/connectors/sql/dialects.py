"""One ``Dialect`` class per database: the column types and statements that differ between them.

``Dialect`` is any SQLAlchemy database, in portable SQL: a merge is an
``UPDATE`` with correlated subqueries and an ``INSERT ... WHERE NOT EXISTS``,
a replace drops the target and renames the staging table, and the commit
runs every statement in one transaction. Each database overrides only what
it does differently, the way dlt overrides its merge jobs per destination:

- ``PostgresDialect``: native types (jsonb, arrays, uuid, interval), an
  ``UNLOGGED`` staging table, ``MERGE`` on PostgreSQL 15 and later;
- ``MySQLDialect`` (MariaDB too): ``UPDATE ... JOIN``, ``<=>``, ``RENAME TABLE``,
  and a commit that takes added columns away again (MySQL commits DDL at once);
- ``SQLiteDialect`` and ``DuckDBDialect``: ``UPDATE ... FROM``; DuckDB also
  hands rows over as Arrow both ways.

To support a new database, subclass the closest dialect, override what
differs and add it to ``DIALECTS`` under SQLAlchemy's name for it.
"""

from __future__ import annotations

import re
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa
import sqlalchemy as sa
from duckdb.sqltypes import DuckDBPyType
from sqlalchemy.dialects import mysql as sa_mysql
from sqlalchemy.dialects import postgresql as sa_pg
from sqlalchemy.dialects.postgresql import base as sa_pg_base
from sqlalchemy.engine import Connection, Engine

from etl_nb._logging import get_logger
from etl_nb.connectors.base import merge_counts
from etl_nb.connectors.sql.types import (
    CAST_INTO,
    SIMPLE_TYPES,
    ColumnPlan,
    LoadShape,
    SaType,
    StepColumn,
    family_of,
    rows_to_batch,
    settled_schema,
    untyped,
)

log = get_logger(component="connectors.sql")

BATCH_ROWS = 65_536
# How many batches an extract reads ahead to type a column that is NULL in its first rows.
TYPE_LOOKAHEAD_BATCHES = 16


@dataclass(frozen=True)
class CommitPlan:
    """The statements that make staged rows visible in the target.

    ``schema_changes`` (columns added, tables renamed) come first, then
    ``rows`` (insert, update, merge), then ``cleanup`` (drop the staging or old
    table). ``undo`` takes the schema changes back when the rows fail, for a
    database that cannot roll DDL back. ``counts`` (a merge's) is the SELECT
    that says what the rows statements will do; it runs just before them, in
    their transaction, and a dry-run runs it alone.
    """

    schema_changes: list[str] = field(default_factory=list)
    rows: list[str] = field(default_factory=list)
    cleanup: list[str] = field(default_factory=list)
    undo: list[str] = field(default_factory=list)
    counts: MergeCountQuery | None = None

    @property
    def statements(self) -> list[str]:
        """Every statement, in the order a transactional database runs them."""
        return [*self.schema_changes, *self.rows, *self.cleanup]


@dataclass(frozen=True)
class TargetTable:
    """What the database says about a load's target before anything is staged."""

    schema_exists: bool
    exists: bool
    columns: Mapping[str, SaType]


@dataclass(frozen=True)
class MergeCountQuery:
    """A SELECT of one row: staged rows, matched rows, changed rows, then one count per value column."""

    sql: str
    columns: list[str]

    def read(self, conn: Connection) -> dict[str, Any]:
        """Run it on ``conn``; the counts as ``merge_counts`` reports them."""
        row = conn.execute(sa.text(self.sql)).one()
        staged, matched, updated, *per_column = (int(v or 0) for v in row)
        return merge_counts(
            staged - matched, updated, matched - updated, dict(zip(self.columns, per_column, strict=True))
        )


class Dialect:
    """Any SQLAlchemy database, in portable SQL; the base every database's dialect overrides."""

    #: The merge key's index is built after the rows are staged (faster than row by row);
    #: otherwise a new merge target gets its primary key when it is created.
    key_after_rows: ClassVar[bool] = False
    #: Schemas can be listed (SQLite's attached databases cannot: take them as existing).
    lists_schemas: ClassVar[bool] = True
    #: The word for a schema in ``DROP ... IF EXISTS``.
    schema_word: ClassVar[str] = "SCHEMA"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sa_dialect = engine.dialect
        self._preparer = engine.dialect.identifier_preparer

    # --- identifiers ---------------------------------------------------------------

    def quote(self, name: str) -> str:
        """A column or table name quoted for this database."""
        return str(self._preparer.quote(name))

    def quote_schema(self, schema: str) -> str:
        """A schema name quoted for this database."""
        return str(self._preparer.quote_schema(schema))

    def qualified(self, schema: str | None, table: str) -> str:
        """``schema.table`` quoted for this database."""
        return (f"{self.quote_schema(schema)}." if schema else "") + self.quote(table)

    def target(self, shape: LoadShape) -> str:
        """The load's target table, quoted."""
        return self.qualified(shape.schema, shape.table)

    def stage(self, shape: LoadShape) -> str:
        """The load's staging table, quoted."""
        return self.qualified(shape.schema, shape.staging)

    def compile_type(self, sa_type: SaType) -> str:
        """A column type as this database writes it in DDL."""
        return str(sa_type.compile(dialect=self.sa_dialect))

    # --- the catalog ---------------------------------------------------------------

    def describe(self, conn: Connection, schema: str | None, table: str) -> TargetTable:
        """Whether ``schema`` and its ``table`` exist, and the table's columns (SQLAlchemy's reflection)."""
        inspector = sa.inspect(conn)
        schema_exists = schema is None or not self.lists_schemas or schema in inspector.get_schema_names()
        exists = schema_exists and inspector.has_table(table, schema=schema)
        columns = (
            {c["name"]: c["type"] for c in inspector.get_columns(table, schema=schema)} if exists else {}
        )
        return TargetTable(schema_exists, exists, columns)

    def table_names(self, conn: Connection, schema: str | None, prefix: str) -> list[str]:
        """The tables of ``schema`` (None: the default one) whose names start with ``prefix``."""
        return [n for n in sa.inspect(conn).get_table_names(schema=schema) if n.startswith(prefix)]

    # --- column types --------------------------------------------------------------

    def plan_column(self, name: str, dtype: DuckDBPyType, *, key: bool = False) -> ColumnPlan:
        """The plan for column ``name`` of DuckDB type ``dtype`` going into this database."""
        column = StepColumn(name, dtype, key)
        simple = SIMPLE_TYPES.get(column.kind)
        if simple is not None:
            cast, stage, family = simple
            return column.plan(column.sql if cast is None else column.cast(cast), stage(), family)
        planners = {
            "null": self.null_plan,
            "sqlnull": self.null_plan,
            "json": self.json_plan,
            "struct": self.json_plan,
            "map": self.json_plan,
            "union": self.json_plan,
            "list": self.list_plan,
            "array": self.list_plan,
            "decimal": self.decimal_plan,
            "timestamp with time zone": self.timestamptz_plan,
            "timestamp": self.timestamp_plan,
            "uuid": self.uuid_plan,
            "blob": self.binary_plan,
            "interval": self.interval_plan,
        }
        return planners.get(column.kind, self.text_plan)(column)

    def text_type(self, key: bool) -> SaType:
        """The type of a text column (``key``: one in the merge key, which must be indexable)."""
        return sa.Text()

    def datetime_type(self) -> SaType:
        """The type of a timestamp without time zone."""
        return sa.DateTime()

    def json_type(self, key: bool) -> SaType:
        """The type of a JSON column when the database has no better one: text."""
        return self.text_type(key)

    def null_plan(self, column: StepColumn) -> ColumnPlan:
        """No value says what it is (NULL in every row, or no rows): the load types it later."""
        return column.plan(column.cast("VARCHAR"), self.text_type(column.key), "null")

    def json_plan(self, column: StepColumn, wire: str | None = None) -> ColumnPlan:
        """JSON, structs, maps, unions (and lists here) as JSON text."""
        wire = wire or (column.sql if column.kind == "json" else f"to_json({column.sql})")
        return column.plan(f"CAST({wire} AS VARCHAR)", self.json_type(column.key), "json")

    def list_plan(self, column: StepColumn) -> ColumnPlan:
        """Lists as JSON arrays."""
        return self.json_plan(column, f"to_json({column.sql})")

    def decimal_plan(self, column: StepColumn) -> ColumnPlan:
        """DECIMAL(p, s) keeps its precision and scale."""
        children = dict(column.dtype.children)
        precision, scale = int(str(children["precision"])), int(str(children["scale"]))
        return column.plan(column.sql, sa.Numeric(precision, scale), "decimal")

    def timestamptz_plan(self, column: StepColumn) -> ColumnPlan:
        """A zone-aware timestamp."""
        return column.plan(column.sql, sa.DateTime(timezone=True), "timestamptz")

    def timestamp_plan(self, column: StepColumn) -> ColumnPlan:
        """A timestamp without zone, in microseconds whatever DuckDB's precision."""
        wire = column.sql if str(column.dtype.id) == "timestamp" else column.cast("TIMESTAMP")
        return column.plan(wire, self.datetime_type(), "timestamp")

    def uuid_plan(self, column: StepColumn) -> ColumnPlan:
        """A UUID as its 36 characters."""
        return column.plan(column.cast("VARCHAR"), sa.String(36), "uuid")

    def binary_plan(self, column: StepColumn) -> ColumnPlan:
        """Bytes."""
        return column.plan(column.sql, sa.LargeBinary(), "binary")

    def interval_plan(self, column: StepColumn) -> ColumnPlan:
        """An interval as text, where the database has no interval type."""
        return self.text_plan(column)

    def text_plan(self, column: StepColumn) -> ColumnPlan:
        """VARCHAR, ENUM, BIT and any type without a counterpart: text."""
        wire = column.sql if column.kind == "varchar" else column.cast("VARCHAR")
        return column.plan(wire, self.text_type(column.key), "text")

    # --- moving rows ---------------------------------------------------------------

    def stream(self, conn: Connection, sql: str, params: Mapping[str, Any]) -> pa.RecordBatchReader:
        """Run an extract's query on ``conn``; its rows as Arrow batches (a server-side cursor)."""
        result = conn.execution_options(stream_results=True, yield_per=BATCH_ROWS).execute(
            sa.text(sql), dict(params)
        )
        keys = list(result.keys())
        description = list(result.cursor.description or []) if result.cursor is not None else []
        partitions = result.partitions(BATCH_ROWS)
        ahead = [rows_to_batch(keys, next(partitions, []), None, description)]
        # Types come from the values: a column NULL in every row so far has none yet,
        # so read a little further before the schema is fixed.
        while untyped(ahead) and len(ahead) < TYPE_LOOKAHEAD_BATCHES:
            rows = next(partitions, None)
            if rows is None:
                break
            ahead.append(rows_to_batch(keys, rows, None, description))
        schema = settled_schema(ahead, more=len(ahead) == TYPE_LOOKAHEAD_BATCHES)

        def batches() -> Iterator[pa.RecordBatch]:
            for batch in ahead:
                yield batch.cast(schema)
            for rows in partitions:
                yield rows_to_batch(keys, rows, schema, description)

        return pa.RecordBatchReader.from_batches(schema, batches())

    def stage_rows(self, conn: Connection, reader: pa.RecordBatchReader, staging: sa.Table) -> int:
        """Insert the batches into the staging table; the number of rows.

        Parameter sets through the driver's executemany, a batch at a time.
        """
        insert = staging.insert()
        rows = 0
        for batch in reader:
            if batch.num_rows:
                conn.execute(insert, batch.to_pylist())
                rows += batch.num_rows
        return rows

    # --- staging -------------------------------------------------------------------

    def staging_prefixes(self, shape: LoadShape) -> list[str]:
        """Words between CREATE and TABLE for the staging table."""
        return []

    def drop_schema(self, schema: str) -> str:
        """The statement that drops a schema the load created."""
        return f"DROP {self.schema_word} IF EXISTS {self.quote_schema(schema)}"

    # --- commit --------------------------------------------------------------------

    def commit_plan(self, shape: LoadShape) -> CommitPlan:
        """The statements that make the staged rows of ``shape`` visible in its target."""
        if not shape.exists or shape.mode == "replace":
            return self.replace(shape)
        target = self.target(shape)
        adds = [
            f"ALTER TABLE {target} ADD COLUMN {self.quote(p.name)} {self.compile_type(p.stage)}"
            for p in shape.added
        ]
        rows = self.merge(shape) if shape.mode == "merge" else [self.append(shape)]
        stage = self.stage(shape)
        counts = self.merge_counts(shape) if shape.mode == "merge" else None
        return CommitPlan(schema_changes=adds, rows=rows, cleanup=[f"DROP TABLE {stage}"], counts=counts)

    def replace(self, shape: LoadShape) -> CommitPlan:
        """The staging table becomes the target (dropping the old one)."""
        target = self.target(shape)
        stage = self.stage(shape)
        drop = [f"DROP TABLE {target}"] if shape.exists else []
        return CommitPlan(schema_changes=[*drop, f"ALTER TABLE {stage} RENAME TO {self.quote(shape.table)}"])

    def append(self, shape: LoadShape) -> str:
        """Insert every staged row."""
        target = self.target(shape)
        stage = self.stage(shape)
        return f"INSERT INTO {target} ({self.columns(shape)}) SELECT {self.selected(shape)} FROM {stage} s"

    def merge(self, shape: LoadShape) -> list[str]:
        """Update the rows whose key matches and whose values differ, then insert the others."""
        updates = self.update_changed(shape) if shape.values else []
        return [*updates, self.insert_new(shape)]

    def update_changed(self, shape: LoadShape) -> list[str]:
        """Update matched rows whose values changed: correlated subqueries, which any SQL has."""
        target = self.target(shape)
        stage = self.stage(shape)
        on_target = " AND ".join(f"{target}.{self.quote(k)} = s.{self.quote(k)}" for k in shape.keys)
        sets = ", ".join(
            f"{self.quote(p.name)} = (SELECT {self.select_expr(p, shape)} FROM {stage} s WHERE {on_target})"
            for p in shape.values
        )
        exists = f"EXISTS (SELECT 1 FROM {stage} s WHERE {on_target})"
        return [f"UPDATE {target} SET {sets} WHERE {exists}"]

    def insert_new(self, shape: LoadShape) -> str:
        """Insert the staged rows whose key the target does not have."""
        target = self.target(shape)
        stage = self.stage(shape)
        return (
            f"INSERT INTO {target} ({self.columns(shape)}) SELECT {self.selected(shape)} FROM {stage} s "
            f"WHERE NOT EXISTS (SELECT 1 FROM {target} t WHERE {self.key_match(shape)})"
        )

    def changed(self, shape: LoadShape) -> str:
        """True for a matched row whose values differ, so unchanged rows are not rewritten."""
        return " OR ".join(self.value_differs(plan, shape) for plan in shape.values)

    def value_differs(self, plan: ColumnPlan, shape: LoadShape) -> str:
        """True where a matched row's value of ``plan``'s column changes.

        A column the target does not have yet is NULL in every row once it is
        added, so it is compared as NULL: the test reads the same before the
        column exists (a dry-run) and after (the merge).
        """
        known = plan.name in shape.target_columns
        left = f"t.{self.quote(plan.name)}" if known else "NULL"
        return self.differs(left, self.select_expr(plan, shape), shape.target_columns.get(plan.name))

    def merge_counts(self, shape: LoadShape) -> MergeCountQuery:
        """The query that counts what the merge of ``shape`` does: new, changed and unchanged rows,
        with the same change test as the merge itself, so a dry-run says what the merge then does."""
        matched = " AND ".join(f"t.{self.quote(k)} IS NOT NULL" for k in shape.keys)
        tests = [self.value_differs(p, shape) for p in shape.values]
        changed = f"({' OR '.join(tests)})" if tests else "1 = 0"
        counts = [
            "count(*)",
            f"sum(CASE WHEN {matched} THEN 1 ELSE 0 END)",
            f"sum(CASE WHEN {matched} AND {changed} THEN 1 ELSE 0 END)",
            *(f"sum(CASE WHEN {matched} AND ({test}) THEN 1 ELSE 0 END)" for test in tests),
        ]
        sql = (
            f"SELECT {', '.join(counts)} FROM {self.stage(shape)} s "
            f"LEFT JOIN {self.target(shape)} t ON {self.key_match(shape)}"
        )
        return MergeCountQuery(sql, [p.name for p in shape.values])

    def differs(self, left: str, right: str, target_type: SaType | None) -> str:
        """The NULL-safe test that two values differ."""
        return f"{left} IS DISTINCT FROM {right}"

    def key_match(self, shape: LoadShape) -> str:
        """The join of target ``t`` and staged rows ``s`` on the merge key."""
        return " AND ".join(f"t.{self.quote(k)} = s.{self.quote(k)}" for k in shape.keys)

    def columns(self, shape: LoadShape) -> str:
        """The target's column list for an INSERT."""
        return ", ".join(self.quote(p.name) for p in shape.plans)

    def selected(self, shape: LoadShape) -> str:
        """The staged values for an INSERT, cast where the target's family needs it."""
        return ", ".join(self.select_expr(p, shape) for p in shape.plans)

    def select_expr(self, plan: ColumnPlan, shape: LoadShape) -> str:
        """A staged column ``s.name`` as it goes into the target column."""
        column = f"s.{self.quote(plan.name)}"
        target_type = shape.target_columns.get(plan.name)
        if target_type is None:
            return column
        target_family = family_of(target_type)
        if target_family and (target_family, plan.family) in CAST_INTO:
            return f"CAST({column} AS {self.compile_type(target_type)})"
        return column

    def run(self, statements: Sequence[str | sa.schema.ExecutableDDLElement]) -> None:
        """Run ``statements`` in one transaction."""
        with self.engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement) if isinstance(statement, str) else statement)

    def commit(self, plan: CommitPlan, step: str) -> dict[str, Any] | None:
        """Run the commit plan of ``step``'s load: here every statement in one transaction.

        Returns the merge's counts (None for other modes), taken just before its rows move.
        """
        counts = None
        with self.engine.begin() as conn:
            for statement in plan.schema_changes:
                conn.execute(sa.text(statement))
            if plan.counts is not None:
                counts = plan.counts.read(conn)
            for statement in [*plan.rows, *plan.cleanup]:
                conn.execute(sa.text(statement))
        return counts

    def count(self, plan: CommitPlan) -> dict[str, Any] | None:
        """The merge's counts without running it (a dry-run), or None if the plan is no merge."""
        if plan.counts is None:
            return None
        with self.engine.connect() as conn:
            return plan.counts.read(conn)

    def run_quietly(self, statements: Sequence[str], step: str) -> None:
        """Run each statement on its own, logging what fails (cleanup that must not fail a load)."""
        for statement in statements:
            try:
                self.run([statement])
            except Exception as exc:  # best effort: the target is right either way
                log.warning("could not drop a staging table", step=step, error=str(exc))


class _UpdateFromDialect(Dialect):
    """Databases with ``UPDATE target SET ... FROM staged WHERE ...``."""

    def update_changed(self, shape: LoadShape) -> list[str]:
        """One join of the target with the staged rows, updating the rows that changed."""
        target = self.target(shape)
        stage = self.stage(shape)
        sets = ", ".join(f"{self.quote(p.name)} = {self.select_expr(p, shape)}" for p in shape.values)
        return [
            f"UPDATE {target} AS t SET {sets} FROM {stage} AS s "
            f"WHERE {self.key_match(shape)} AND ({self.changed(shape)})"
        ]


_SIMPLE_LIST_CHILDREN = {
    "boolean",
    "smallint",
    "integer",
    "bigint",
    "float",
    "double",
    "decimal",
    "varchar",
    "date",
    "timestamp",
    "timestamp with time zone",
}


class PostgresDialect(_UpdateFromDialect):
    """PostgreSQL: native types, ``UNLOGGED`` staging, ``MERGE`` from version 15."""

    key_after_rows = True
    #: Staging work need not wait for its WAL to reach the disk (a flush costs 10-40 ms here, a
    #: small load's whole budget): the commit that makes the rows visible does wait, and its flush
    #: makes everything written before it durable too. A crash before it loses only staging tables.
    NO_FLUSH: ClassVar[str] = "SET LOCAL synchronous_commit TO OFF"

    def run(self, statements: Sequence[str | sa.schema.ExecutableDDLElement]) -> None:
        """Run ``statements`` (staging and cleanup) in one transaction that does not wait for the disk."""
        super().run([self.NO_FLUSH, *statements])

    def describe(self, conn: Connection, schema: str | None, table: str) -> TargetTable:
        """One catalog query instead of SQLAlchemy's reflection, whose queries take 30-40 ms to build
        in a fresh process (a small load's whole budget). The types are read by SQLAlchemy's own
        reader of ``format_type``, so they are those its reflection gives; where that reader is not
        there (another SQLAlchemy version), the reflection runs."""
        reflect = getattr(self.sa_dialect, "_reflect_type", None)
        named_type_loader = getattr(sa_pg_base, "_NamedTypeLoader", None)
        if reflect is None or named_type_loader is None:  # pragma: no cover - SQLAlchemy 2.0, 2.1 have them
            return super().describe(conn, schema, table)
        name = self.qualified(schema, table)
        in_schema = "to_regnamespace(:schema) IS NOT NULL" if schema is not None else "true"
        rows = conn.execute(
            sa.text(
                f"SELECT {in_schema}, c.oid IS NOT NULL, a.attname, format_type(a.atttypid, a.atttypmod) "
                "FROM (SELECT to_regclass(:name) AS oid) r "
                "LEFT JOIN pg_class c ON c.oid = r.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
                "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
                "ORDER BY a.attnum"
            ),
            {"name": name, **({"schema": self.quote_schema(schema)} if schema is not None else {})},
        ).all()
        schema_exists, exists = bool(rows[0][0]), bool(rows[0][1])
        named_types = named_type_loader(self.sa_dialect, conn, {})  # enums and domains, read if needed
        columns = {
            str(column): reflect(kind, named_types, type_description=f"column '{column}'", collation=None)
            for _, _, column, kind in rows
            if column is not None
        }
        return TargetTable(schema_exists, exists, columns)

    def table_names(self, conn: Connection, schema: str | None, prefix: str) -> list[str]:
        """The tables of ``schema`` named ``prefix...``, from ``pg_tables``."""
        rows = conn.execute(
            sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = coalesce(CAST(:schema AS text), "
                "current_schema()) AND starts_with(tablename, :prefix)"
            ),
            {"schema": schema, "prefix": prefix},
        )
        return [str(r[0]) for r in rows]

    def json_plan(self, column: StepColumn, wire: str | None = None) -> ColumnPlan:
        """JSON as jsonb (DuckDB's JSON text goes in as it is)."""
        wire = wire or (column.sql if column.kind == "json" else f"to_json({column.sql})")
        return column.plan(wire, sa_pg.JSONB(), "json")

    def list_plan(self, column: StepColumn) -> ColumnPlan:
        """A list of simple values as a PostgreSQL array; other lists as jsonb."""
        child = column.dtype.child
        if child.id in _SIMPLE_LIST_CHILDREN and str(child) != "JSON":
            inner = self.plan_column(column.name, child)
            if inner.wire == column.sql:
                return column.plan(column.sql, sa_pg.ARRAY(inner.stage), "array")
        return self.json_plan(column, f"to_json({column.sql})")

    def uuid_plan(self, column: StepColumn) -> ColumnPlan:
        """uuid."""
        return column.plan(column.sql, sa.Uuid(), "uuid")

    def interval_plan(self, column: StepColumn) -> ColumnPlan:
        """interval."""
        return column.plan(column.sql, sa.Interval(), "interval")

    def staging_prefixes(self, shape: LoadShape) -> list[str]:
        """Rows staged for an existing table are copied into it at commit: they need no WAL of their
        own. A staging table that becomes the target (a new table, replace) must be logged. So is
        the staging table of a few rows: an unlogged table's creation waits for the disk (its init
        fork is synced, again for its key's index: 20-300 ms here) and a few rows' WAL is nothing."""
        return ["UNLOGGED"] if shape.exists and shape.mode != "replace" and not shape.few_rows else []

    def differs(self, left: str, right: str, target_type: SaType | None) -> str:
        """``IS DISTINCT FROM``; json (not jsonb) has no equality, so it is compared as text."""
        if target_type is not None and type(target_type).__name__ == "JSON":
            left, right = f"CAST({left} AS TEXT)", f"CAST({right} AS TEXT)"
        return super().differs(left, right, target_type)

    def merge(self, shape: LoadShape) -> list[str]:
        """PostgreSQL 15's ``MERGE``: one join of the staged rows with the target that updates the
        changed rows and inserts the new ones, where UPDATE + INSERT join them twice (measured:
        1 million changed rows in 5.8-6.2 s instead of 9.4-9.8 s; none changed, 1.9 s either way)."""
        if (self.sa_dialect.server_version_info or (0,)) < (15,):
            return super().merge(shape)
        target = self.target(shape)
        stage = self.stage(shape)
        update = ""
        if shape.values:
            sets = ", ".join(f"{self.quote(p.name)} = {self.select_expr(p, shape)}" for p in shape.values)
            update = f" WHEN MATCHED AND ({self.changed(shape)}) THEN UPDATE SET {sets}"
        return [
            f"MERGE INTO {target} AS t USING {stage} AS s ON {self.key_match(shape)}{update} "
            f"WHEN NOT MATCHED THEN INSERT ({self.columns(shape)}) VALUES ({self.selected(shape)})"
        ]


class MySQLDialect(Dialect):
    """MySQL and MariaDB: no zone-aware type, ``UPDATE ... JOIN``, and DDL that commits at once."""

    key_after_rows = True
    schema_word = "DATABASE"

    def text_type(self, key: bool) -> SaType:
        """LONGTEXT; VARCHAR(255) in a key, as MySQL cannot index an unbounded TEXT."""
        return sa.String(255) if key else sa_mysql.LONGTEXT()

    def datetime_type(self) -> SaType:
        """DATETIME with microseconds."""
        return sa_mysql.DATETIME(fsp=6)

    def json_type(self, key: bool) -> SaType:
        """JSON."""
        return sa.JSON()

    def timestamptz_plan(self, column: StepColumn) -> ColumnPlan:
        """MySQL has no zone-aware type: keep the instant as UTC."""
        return column.plan(f"timezone('UTC', {column.sql})", self.datetime_type(), "timestamptz")

    def binary_plan(self, column: StepColumn) -> ColumnPlan:
        """LONGBLOB."""
        return column.plan(column.sql, sa_mysql.LONGBLOB(), "binary")

    def replace(self, shape: LoadShape) -> CommitPlan:
        """``RENAME TABLE`` swaps both tables in one statement; the old one is dropped after."""
        target = self.target(shape)
        stage = self.stage(shape)
        if not shape.exists:
            return CommitPlan(schema_changes=[f"RENAME TABLE {stage} TO {target}"])
        old = self.qualified(shape.schema, f"{shape.staging}_old")
        return CommitPlan(
            schema_changes=[f"RENAME TABLE {target} TO {old}, {stage} TO {target}"],
            cleanup=[f"DROP TABLE {old}"],
        )

    def commit_plan(self, shape: LoadShape) -> CommitPlan:
        """As everywhere, plus the statement that drops the added columns if the rows fail."""
        plan = super().commit_plan(shape)
        added = shape.added if shape.exists and shape.mode != "replace" else []
        if not added:
            return plan
        drop = ", ".join(f"DROP COLUMN {self.quote(p.name)}" for p in added)
        undo = [f"ALTER TABLE {self.target(shape)} {drop}"]
        return CommitPlan(plan.schema_changes, plan.rows, plan.cleanup, undo, plan.counts)

    def update_changed(self, shape: LoadShape) -> list[str]:
        """``UPDATE ... JOIN``: MySQL's update of one table from another."""
        target = self.target(shape)
        stage = self.stage(shape)
        sets = ", ".join(f"t.{self.quote(p.name)} = {self.select_expr(p, shape)}" for p in shape.values)
        return [
            f"UPDATE {target} t JOIN {stage} s ON {self.key_match(shape)} SET {sets} "
            f"WHERE {self.changed(shape)}"
        ]

    def differs(self, left: str, right: str, target_type: SaType | None) -> str:
        """MySQL's NULL-safe equality is ``<=>``."""
        return f"NOT ({left} <=> {right})"

    def commit(self, plan: CommitPlan, step: str) -> dict[str, Any] | None:
        """MySQL commits each DDL statement by itself: add columns first, count and run the rows in
        one transaction, take the columns away again if that fails; the cleanup is best effort."""
        self.run(plan.schema_changes)
        counts = None
        if plan.rows:
            try:
                with self.engine.begin() as conn:
                    if plan.counts is not None:
                        counts = plan.counts.read(conn)
                    for statement in plan.rows:
                        conn.execute(sa.text(statement))
            except Exception:
                if plan.undo:
                    self.run(plan.undo)
                raise
        # The data is in; a leftover staging table is only clutter.
        self.run_quietly(plan.cleanup, step)
        return counts


class SQLiteDialect(_UpdateFromDialect):
    """SQLite: ``IS NOT`` is its NULL-safe inequality; attached databases are its schemas."""

    lists_schemas = False

    def differs(self, left: str, right: str, target_type: SaType | None) -> str:
        """``a IS NOT b``."""
        return f"{left} IS NOT {right}"


class DuckDBDialect(_UpdateFromDialect):
    """A DuckDB file: Arrow both ways through the DuckDB connection, no rows in Python."""

    def stream(self, conn: Connection, sql: str, params: Mapping[str, Any]) -> pa.RecordBatchReader:
        """DuckDB hands over Arrow itself (``$name`` parameters)."""
        raw: Any = conn.connection.driver_connection
        native_sql = re.sub(r"(?<![:\w]):(\w+)", r"$\1", sql)
        with warnings.catch_warnings():  # "an extra copy": one batch at a time, which is what we want
            warnings.simplefilter("ignore", UserWarning)
            reader: pa.RecordBatchReader = raw.execute(native_sql, dict(params)).to_arrow_reader(BATCH_ROWS)
        return reader

    def stage_rows(self, conn: Connection, reader: pa.RecordBatchReader, staging: sa.Table) -> int:
        """The batches registered with DuckDB and inserted in one statement."""
        raw: Any = conn.connection.driver_connection
        name = f"etl_nb_rows_{uuid.uuid4().hex[:8]}"
        raw.register(name, reader)
        try:
            target = self.qualified(staging.schema, staging.name)
            raw.execute(f"INSERT INTO {target} SELECT * FROM {name}")
            return int(raw.execute(f"SELECT count(*) FROM {target}").fetchall()[0][0])
        finally:
            raw.unregister(name)


#: SQLAlchemy's dialect name -> the class that writes its statements; others get ``Dialect``.
DIALECTS: dict[str, type[Dialect]] = {
    "postgresql": PostgresDialect,
    "mysql": MySQLDialect,
    "mariadb": MySQLDialect,
    "sqlite": SQLiteDialect,
    "duckdb": DuckDBDialect,
}


def dialect_for(engine: Engine) -> Dialect:
    """The dialect that writes statements for ``engine``'s database."""
    return DIALECTS.get(str(engine.dialect.name), Dialect)(engine)
