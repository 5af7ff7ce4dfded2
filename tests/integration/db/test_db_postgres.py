"""PostgreSQL end to end: types, merge, incremental, atomicity, errors, secrets."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from etl_nb import Pipeline, RetryPolicy
from etl_nb.connectors import (
    Connector,
    ConnectorContext,
    PendingWrite,
    ReadRequest,
    WriteRequest,
    register,
)
from etl_nb.connectors.postgres import PostgresConnector
from etl_nb.errors import ConnectorError, PipelineError
from etl_nb.spec import ConnectionSpec, ExtractStep

pytestmark = pytest.mark.postgres


def run_sql(engine: sa.Engine, *statements: str, params: dict[str, Any] | None = None) -> list[Any]:
    """Run statements; the rows of the last one (if it returns rows)."""
    rows: list[Any] = []
    with engine.connect() as conn:
        for statement in statements:
            result = conn.execute(sa.text(statement), params or {})
            rows = list(result.fetchall()) if result.returns_rows else []
    return rows


TYPES_DDL = """
CREATE TABLE {s}.src (
    id integer PRIMARY KEY,
    small smallint,
    big bigint,
    amount numeric(12, 2),
    precise numeric(30, 10),
    ratio real,
    score double precision,
    label text,
    flag boolean,
    day date,
    at timestamp,
    at_tz timestamptz,
    uid uuid,
    doc json,
    docb jsonb,
    ints integer[],
    tags text[]
)
"""
TYPES_ROWS = """
INSERT INTO {s}.src VALUES
 (1, 32767, 9223372036854775807, 1234567890.12, 12345678901234567890.0123456789, 1.5, 3.141592653589793,
  'plain', true, '2026-01-31', '2026-01-31 23:59:59.123456', '2026-01-31 23:59:59.654321+02',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{{"a": 1, "b": [1, 2]}}', '{{"k": "v", "n": null}}',
  ARRAY[1, 2, NULL], ARRAY['x', 'y z', NULL]),
 (2, -32768, -9223372036854775808, -0.01, -0.0000000001, -0.25, -1e-300,
  E'Unicode: é ü ß 中文 日本語 🎉👩‍👩‍👧 \u0301 "quotes" ''single'' back\\\\slash tab\\there new\\nline',
  false,
  '0001-01-01', '1970-01-01 00:00:00', '1999-12-31 23:00:00+00',
  '00000000-0000-0000-0000-000000000000', '[]', '{{}}', ARRAY[]::integer[], ARRAY['']),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
"""


def checksum(engine: sa.Engine, table: str, key: str = "id") -> str:
    """md5 over every row's text form, in key order: equal only if every value is."""
    return str(run_sql(engine, f"SELECT md5(string_agg(t::text, ',' ORDER BY {key})) FROM {table} t")[0][0])


def leftovers(engine: sa.Engine, schema: str) -> list[str]:
    """Staging tables left in ``schema``."""
    rows = run_sql(
        engine,
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = :s AND table_name LIKE '\\_etl\\_nb%'",
        params={"s": schema},
    )
    return [r[0] for r in rows]


def copy_pipeline(make: Callable[[str], Pipeline], url: str, schema: str, target: str) -> Pipeline:
    p = make("types")
    p.connect("pg", url)
    p.extract("src", source="pg", query=f"SELECT * FROM {schema}.src")
    p.transform("shaped", sql="SELECT * FROM src")  # through DuckDB SQL
    p.load("shaped", to="pg", table=target, mode="merge", key="id")
    return p


def test_every_type_survives_postgres_duckdb_postgres(pg, pg_url, schema, make_pipeline):
    run_sql(pg, TYPES_DDL.format(s=schema), TYPES_ROWS.format(s=schema))
    p = copy_pipeline(make_pipeline, pg_url, schema, f"{schema}_out.copy")
    result = p.run()
    assert result.status == "success", result.error
    assert result.steps[f"load:shaped:pg:{schema}_out.copy"].rows == 3
    try:
        assert checksum(pg, f"{schema}_out.copy") == checksum(pg, f"{schema}.src")
        types = dict(
            run_sql(
                pg,
                "SELECT column_name, format_type(atttypid, atttypmod) FROM information_schema.columns c "
                "JOIN pg_attribute a ON a.attrelid = (c.table_schema || '.' || c.table_name)::regclass "
                "AND a.attname = c.column_name WHERE table_schema = :s AND table_name = 'copy'",
                params={"s": f"{schema}_out"},
            )
        )
        assert types["amount"] == "numeric(12,2)"
        assert types["precise"] == "numeric(30,10)"
        assert types["uid"] == "uuid"
        assert types["docb"] == "jsonb"
        assert types["ints"] == "integer[]"
        assert types["tags"] == "text[]"
        assert types["at_tz"] == "timestamp with time zone"
        assert types["at"] == "timestamp without time zone"
        # The schema was created, the key made a primary key, no staging table left behind.
        assert run_sql(pg, f"SELECT count(*) FROM pg_indexes WHERE schemaname = '{schema}_out'")[0][0] == 1
        assert leftovers(pg, f"{schema}_out") == []
        # Values, not just text: NULLs stay NULL in every column.
        nulls = run_sql(
            pg,
            "SELECT num_nulls(small, big, amount, precise, ratio, score, label, flag, day, at, at_tz, uid, "
            f"doc, docb, ints, tags) FROM {schema}_out.copy WHERE id = 3",
        )[0][0]
        assert nulls == 16
    finally:
        run_sql(pg, f"DROP SCHEMA IF EXISTS {schema}_out CASCADE")


def test_second_run_updates_and_inserts_exactly_the_changed_rows(pg, pg_url, schema, make_pipeline):
    run_sql(pg, TYPES_DDL.format(s=schema), TYPES_ROWS.format(s=schema))
    run_sql(pg, f"INSERT INTO {schema}.src (id, label) SELECT g, 'row ' || g FROM generate_series(10, 200) g")
    p = copy_pipeline(make_pipeline, pg_url, schema, f"{schema}.copy")
    assert p.run().status == "success"
    before = dict(run_sql(pg, f"SELECT id, xmin::text FROM {schema}.copy"))

    run_sql(
        pg,
        f"UPDATE {schema}.src SET label = 'changed', docb = '{{\"new\": true}}' WHERE id IN (2, 50)",
        f"UPDATE {schema}.src SET amount = 0.5 WHERE id = 3",
        f"INSERT INTO {schema}.src (id, label, uid) VALUES (500, 'new', gen_random_uuid())",
    )
    result = p.run()
    assert result.status == "success", result.error
    assert checksum(pg, f"{schema}.copy") == checksum(pg, f"{schema}.src")
    after = dict(run_sql(pg, f"SELECT id, xmin::text FROM {schema}.copy"))
    rewritten = {k for k in after if before.get(k) != after[k]}
    assert rewritten == {2, 3, 50, 500}
    assert leftovers(pg, schema) == []


def test_incremental_extract_fetches_only_new_rows_and_a_failed_run_refetches_them(
    pg, pg_url, schema, make_pipeline
):
    run_sql(
        pg,
        f"CREATE TABLE {schema}.orders (id int PRIMARY KEY, amount numeric(10,2), updated_at timestamptz)",
        f"INSERT INTO {schema}.orders SELECT g, g, '2026-01-01'::timestamptz + g * interval '1 hour' "
        "FROM generate_series(1, 100) g",
    )
    p = make_pipeline("incr")
    p.connect("pg", pg_url)
    p.extract("orders", source="pg", query=f"SELECT * FROM {schema}.orders", incremental="updated_at")
    p.check("orders", [{"expression": "amount >= 0"}])
    p.load("orders", to="pg", table=f"{schema}.orders_copy", mode="merge", key="id")

    first = p.run()
    assert first.status == "success", first.error
    assert first.steps["orders"].rows == 100

    run_sql(
        pg,
        f"INSERT INTO {schema}.orders VALUES (101, 5, '2026-02-01'), (102, -1, '2026-02-02')",
    )
    failed = p.run()
    assert failed.status == "failed"
    assert failed.steps["orders"].rows == 2  # only the new rows were fetched
    assert run_sql(pg, f"SELECT count(*) FROM {schema}.orders_copy")[0][0] == 100

    run_sql(pg, f"UPDATE {schema}.orders SET amount = 1 WHERE id = 102")
    retried = p.run()
    assert retried.status == "success", retried.error
    assert retried.steps["orders"].rows == 2  # the same window again: the failed run kept no mark
    assert run_sql(pg, f"SELECT count(*) FROM {schema}.orders_copy")[0][0] == 102

    nothing_new = p.run()
    assert nothing_new.steps["orders"].rows == 0


def _merge_setup(pg, schema):
    run_sql(
        pg,
        f"CREATE TABLE {schema}.src (id int, amount numeric(10,2), note text)",
        f"INSERT INTO {schema}.src SELECT g, g, 'n' || g FROM generate_series(1, 50) g",
        f"CREATE TABLE {schema}.target "
        "(id int PRIMARY KEY, amount numeric(10,2) CHECK (amount >= 0), note text)",
        f"INSERT INTO {schema}.target SELECT g, g * 2, 'old' FROM generate_series(1, 40) g",
    )


def test_merge_failing_inside_its_transaction_leaves_target_byte_for_byte_unchanged(
    pg, pg_url, schema, make_pipeline
):
    _merge_setup(pg, schema)
    # Row 45 is new and breaks the target's CHECK: the INSERT fails after the UPDATE ran.
    run_sql(pg, f"UPDATE {schema}.src SET amount = -1 WHERE id = 45")
    before = checksum(pg, f"{schema}.target")
    p = make_pipeline("merge_fail")
    p.connect("pg", pg_url)
    p.extract("src", source="pg", query=f"SELECT * FROM {schema}.src")
    p.load("src", to="pg", table=f"{schema}.target", mode="merge", key="id")
    result = p.run()
    assert result.status == "failed"
    assert "check constraint" in (result.error or "")
    assert "left as it was" in (result.error or "")
    assert checksum(pg, f"{schema}.target") == before
    assert leftovers(pg, schema) == []


def test_merge_aborted_by_a_later_failure_leaves_target_unchanged(pg, pg_url, schema, make_pipeline):
    _merge_setup(pg, schema)
    before = checksum(pg, f"{schema}.target")
    p = make_pipeline("merge_abort")
    p.connect("pg", pg_url)
    p.extract("src", source="pg", query=f"SELECT * FROM {schema}.src")
    p.load("src", to="pg", table=f"{schema}.target", mode="merge", key="id")
    p.transform("later", sql="SELECT count(*) AS n FROM src")
    p.check("later", [{"expression": "n > 1000"}])
    result = p.run()
    assert result.status == "failed"
    assert checksum(pg, f"{schema}.target") == before
    assert leftovers(pg, schema) == []


def test_merge_with_duplicate_keys_is_a_clear_error(pg, pg_url, schema, make_pipeline):
    _merge_setup(pg, schema)
    before = checksum(pg, f"{schema}.target")
    p = make_pipeline("dupes")
    p.connect("pg", pg_url)
    p.extract(
        "src",
        source="pg",
        query=f"SELECT * FROM {schema}.src UNION ALL SELECT * FROM {schema}.src WHERE id = 7",
    )
    p.load("src", to="pg", table=f"{schema}.target", mode="merge", key="id")
    result = p.run()
    assert result.status == "failed"
    assert "1 key value(s) of (id) appear more than once" in (result.error or "")
    assert "(e.g. 7)" in (result.error or "")
    assert checksum(pg, f"{schema}.target") == before


def test_replace_swaps_in_the_new_table_and_append_adds_rows(pg, pg_url, schema, make_pipeline):
    _merge_setup(pg, schema)
    p = make_pipeline("replace")
    p.connect("pg", pg_url)
    p.extract("src", source="pg", query=f"SELECT id, note FROM {schema}.src WHERE id <= 5")
    p.load("src", to="pg", table=f"{schema}.target", mode="replace")
    assert p.run().status == "success"
    assert run_sql(pg, f"SELECT count(*), max(note) FROM {schema}.target")[0] == (5, "n5")
    cols = run_sql(
        pg,
        f"SELECT column_name FROM information_schema.columns WHERE table_schema = '{schema}' "
        "AND table_name = 'target' ORDER BY ordinal_position",
    )
    assert [c[0] for c in cols] == ["id", "note"]

    q = make_pipeline("append")
    q.connect("pg", pg_url)
    q.extract("src", source="pg", query=f"SELECT id, note FROM {schema}.src WHERE id > 45")
    q.load("src", to="pg", table=f"{schema}.target", mode="append")
    assert q.run().status == "success"
    assert run_sql(pg, f"SELECT count(*) FROM {schema}.target")[0][0] == 10
    assert leftovers(pg, schema) == []


def test_replace_under_a_dependent_view_says_why_and_changes_nothing(pg, pg_url, schema, make_pipeline):
    _merge_setup(pg, schema)
    run_sql(pg, f"CREATE VIEW {schema}.target_view AS SELECT * FROM {schema}.target")
    before = checksum(pg, f"{schema}.target")
    p = make_pipeline("replace_view")
    p.connect("pg", pg_url)
    p.extract("src", source="pg", query=f"SELECT * FROM {schema}.src")
    p.load("src", to="pg", table=f"{schema}.target", mode="replace")
    result = p.run()
    assert result.status == "failed"
    assert "depend" in (result.error or "")
    assert "use --mode merge or append, or drop the dependents first" in (result.error or "")
    assert "Check the SQL" not in (result.error or "")
    assert checksum(pg, f"{schema}.target") == before


def test_a_column_added_upstream_is_added_to_the_target(pg, pg_url, schema, make_pipeline):
    _merge_setup(pg, schema)
    p = make_pipeline("evolve")
    p.connect("pg", pg_url)
    p.extract("src", source="pg", query=f"SELECT *, id * 10 AS extra, 'é' AS label FROM {schema}.src")
    p.load("src", to="pg", table=f"{schema}.target", mode="merge", key="id")
    assert p.run().status == "success"
    rows = run_sql(
        pg, f"SELECT id, amount, extra, label FROM {schema}.target WHERE id IN (1, 50) ORDER BY id"
    )
    assert [tuple(r) for r in rows] == [(1, 1, 10, "é"), (50, 50, 500, "é")]


def test_a_type_conflict_with_the_target_is_a_clear_error(pg, pg_url, schema, make_pipeline):
    _merge_setup(pg, schema)
    before = checksum(pg, f"{schema}.target")
    p = make_pipeline("conflict")
    p.connect("pg", pg_url)
    p.extract("src", source="pg", query=f"SELECT id, note AS amount FROM {schema}.src")
    p.load("src", to="pg", table=f"{schema}.target", mode="merge", key="id")
    result = p.run()
    assert result.status == "failed"
    assert result.error == (
        f"Cannot load step 'src' into '{schema}.target': column 'amount' is numeric(10, 2) in the table but "
        "varchar in the step. Cast it in a transform to the table's type, or use --mode replace to recreate "
        "the table."
    )
    assert checksum(pg, f"{schema}.target") == before


def test_parameters_are_bound_never_spliced(pg, pg_url, schema, make_pipeline):
    _merge_setup(pg, schema)
    run_sql(
        pg,
        f"CREATE TABLE {schema}.events (id int, day date, who text)",
        f"INSERT INTO {schema}.events VALUES (1, '2026-01-01', 'a'), (2, '2026-02-01', 'b')",
    )
    p = make_pipeline("params")
    p.connect("pg", pg_url)
    p.extract(
        "events",
        source="pg",
        query=f"SELECT * FROM {schema}.events WHERE day >= {{{{ start }}}} AND who <> {{{{ who }}}}",
    )
    # A date given as text (as papermill passes it) is read as the column's type.
    result = p.run(params={"start": "2026-01-15", "who": "x'; DROP TABLE " + schema + ".target; --"})
    assert result.status == "success", result.error
    assert result.steps["events"].rows == 1
    assert run_sql(pg, f"SELECT count(*) FROM {schema}.target")[0][0] == 40


# --- bad input: one line, naming the step or connection and what to check ---------------------


def _failure(make_pipeline, url: str, query: str = "SELECT 1 AS x") -> str:
    p = make_pipeline("bad")
    p.connect("db", url)
    p.extract("rows", source="db", query=query)
    result = p.run()
    assert result.status == "failed"
    message = result.error or ""
    assert "\n" not in message
    assert "Traceback" not in message
    return message


def test_unreachable_host_is_named(make_pipeline):
    message = _failure(make_pipeline, "postgresql://postgres@127.0.0.1:1/postgres")
    assert message.startswith(
        "Cannot reach the database of connection 'db' (postgresql://postgres@127.0.0.1:1/"
    )
    assert "Check the host and port" in message


def test_unknown_user_is_a_login_error(pg_url, make_pipeline):
    url = sa.engine.make_url(pg_url).set(username="no_such_role_etl").render_as_string(hide_password=False)
    message = _failure(make_pipeline, url)
    assert "refused the login" in message
    assert "no_such_role_etl" in message


def test_missing_database_is_named(pg_url, make_pipeline):
    url = sa.engine.make_url(pg_url).set(database="no_such_db_etl").render_as_string(hide_password=False)
    message = _failure(make_pipeline, url)
    assert "does not exist" in message
    assert "Create it, or fix the database name" in message


def test_unknown_table_names_the_step(pg_url, make_pipeline):
    message = _failure(make_pipeline, pg_url, "SELECT * FROM no_such_table")
    assert message.startswith("The extract for step 'rows' on connection 'db'")
    assert 'relation "no_such_table" does not exist' in message
    assert "Check the table name" in message


def test_sql_error_at_the_source_names_the_step(pg_url, make_pipeline):
    message = _failure(make_pipeline, pg_url, "SELEC 1")
    assert message.startswith("SQL error in the extract (step 'rows') on connection 'db'")
    assert 'syntax error at or near "SELEC"' in message


def test_secrets_never_appear_in_errors(monkeypatch, make_pipeline, tmp_path: Path):
    monkeypatch.setenv("ETL_TEST_PG_SECRET", "s3cr3t-Value-42")
    p = make_pipeline("secret")
    p.connect("db", "postgresql://postgres:${ETL_TEST_PG_SECRET}@127.0.0.1:1/postgres")
    p.extract("rows", source="db", query="SELECT 1")
    result = p.run()
    assert result.status == "failed"
    assert "s3cr3t-Value-42" not in (result.error or "")
    assert "Cannot reach the database" in (result.error or "")
    runs = p.store.runs(limit=5) if hasattr(p.store, "runs") else []
    assert "s3cr3t-Value-42" not in repr(runs)


def test_a_dropped_connection_is_a_transient_error(pg, pg_url, tmp_path: Path):
    spec = ConnectionSpec(name="db", type="postgres", url=pg_url)
    connector = PostgresConnector(spec, ConnectorContext(base_dir=tmp_path))
    connector.open()
    marker = "etl_nb_kill_me"
    step = ExtractStep(
        name="slow",
        source="db",
        query=f"SELECT g AS id, '{marker}' AS m FROM generate_series(1, 3) g "
        "WHERE (SELECT true FROM pg_sleep(2))",
    )

    def kill() -> None:
        for _ in range(100):
            killed = run_sql(
                pg,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE :m AND pid <> pg_backend_pid()",
                params={"m": f"%{marker}%pg_sleep%"},
            )
            if killed:
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill)
    killer.start()
    try:
        with pytest.raises(ConnectorError) as caught:
            connector.read(ReadRequest(extract=step)).read_all()
    finally:
        killer.join()
        connector.close()
    assert caught.value.transient
    assert "was lost" in caught.value.message
    assert "\n" not in caught.value.message


# --- the streamed path: an extract read by one load goes straight into it ----------------------


def test_an_extract_read_only_by_a_load_streams_into_it_and_cannot_be_read_twice(
    pg, pg_url, schema, make_pipeline
):
    _merge_setup(pg, schema)
    p = make_pipeline("streamed")
    p.connect("pg", pg_url)
    p.extract("src", source="pg", query=f"SELECT * FROM {schema}.src")
    p.transform("shaped", sql="SELECT id, amount * 2 AS amount, note FROM src")
    p.load("shaped", to="pg", table=f"{schema}.doubled", mode="merge", key="id")
    result = p.run()
    assert result.status == "success", result.error
    assert result.steps["src"].rows == 50  # streamed, not stored: the batches that passed are counted
    assert result.steps[f"load:shaped:pg:{schema}.doubled"].rows == 50
    assert run_sql(pg, f"SELECT sum(amount) FROM {schema}.doubled")[0][0] == 2 * sum(range(1, 51))
    with pytest.raises(PipelineError, match="streamed its rows straight into the step that reads it"):
        p.table("src")
    with pytest.raises(PipelineError, match="Extract 'src' streamed its rows"):
        p.table("shaped")  # fused over the stream: the same clear error
    # Materialised on request (as a notebook cell does), the same extract is a table.
    kept = p.run(materialize="all")
    assert kept.status == "success", kept.error
    assert kept.steps["src"].rows == 50
    assert p.table("src").height == 50


def test_a_stream_failing_midway_fails_the_load_and_leaves_no_table(pg, pg_url, schema, make_pipeline):
    batch = pa.record_batch({"id": pa.array([1, 2], pa.int64()), "note": pa.array(["a", "b"])})

    @register("etl_nb_test_flaky")
    class Flaky(Connector):
        reads = 0

        def read(self, request: ReadRequest) -> pa.RecordBatchReader:
            Flaky.reads += 1

            def batches() -> Iterator[pa.RecordBatch]:
                yield batch
                raise ConnectorError("The source went away after one batch.", transient=True)

            return pa.RecordBatchReader.from_batches(batch.schema, batches())

        def write(self, request: WriteRequest) -> PendingWrite:
            raise NotImplementedError

    p = make_pipeline("flaky")
    p.retry = RetryPolicy(attempts=2, initial=0.01, jitter=0)
    p.connect("flaky", "unused://", type="etl_nb_test_flaky")
    p.connect("pg", pg_url)
    p.extract("rows", source="flaky", query="anything")
    p.load("rows", to="pg", table=f"{schema}.made_by_merge", mode="merge", key="id")
    result = p.run()
    assert result.status == "failed"
    # The load fails with the source's words; it is never retried into an empty table (a second
    # scan of the stream is an error that names the first failure).
    assert "went away after one batch" in (result.error or "")
    assert Flaky.reads == 1
    assert run_sql(pg, f"SELECT to_regclass('{schema}.made_by_merge') IS NULL")[0][0]
    assert leftovers(pg, schema) == []


def test_a_merge_creating_its_table_leaves_no_table_when_the_run_fails_later(
    pg, pg_url, schema, make_pipeline
):
    _merge_setup(pg, schema)
    p = make_pipeline("create_abort")
    p.connect("pg", pg_url)
    p.extract("src", source="pg", query=f"SELECT * FROM {schema}.src")
    p.load("src", to="pg", table=f"{schema}_new.created", mode="merge", key="id")
    p.extract("other", source="pg", query="SELECT 1 AS n")
    p.check("other", [{"expression": "n > 1"}])
    result = p.run()
    assert result.status == "failed"
    assert result.steps["load:src:pg:" + f"{schema}_new.created"].status == "skipped"
    assert run_sql(pg, f"SELECT count(*) FROM pg_namespace WHERE nspname = '{schema}_new'")[0][0] == 0
    assert leftovers(pg, schema) == []


def test_a_streamed_merge_with_a_null_key_is_a_clear_error_and_leaves_nothing(
    pg, pg_url, schema, make_pipeline
):
    _merge_setup(pg, schema)
    before = checksum(pg, f"{schema}.target")
    for table in (f"{schema}.target", f"{schema}.fresh"):
        p = make_pipeline("null_key")
        p.connect("pg", pg_url)
        query = f"SELECT * FROM {schema}.src UNION ALL SELECT NULL, 1::numeric(10, 2), 'x'"
        p.extract("src", source="pg", query=query)
        p.load("src", to="pg", table=table, mode="merge", key="id")
        result = p.run()
        assert result.status == "failed"
        assert "1 row(s) have a NULL in the key (id)" in (result.error or "")
    assert checksum(pg, f"{schema}.target") == before
    assert run_sql(pg, f"SELECT to_regclass('{schema}.fresh') IS NULL")[0][0]
    assert leftovers(pg, schema) == []


def test_merge_into_a_table_without_a_unique_key_updates_only_changed_rows(pg, pg_url, schema, make_pipeline):
    _merge_setup(pg, schema)
    run_sql(
        pg,
        f"CREATE TABLE {schema}.loose (id int, amount numeric(10,2), note text)",
        f"INSERT INTO {schema}.loose SELECT g, g, 'n' || g FROM generate_series(1, 40) g",
        f"UPDATE {schema}.loose SET note = 'stale' WHERE id = 3",
    )
    before = dict(run_sql(pg, f"SELECT id, xmin::text FROM {schema}.loose"))
    p = make_pipeline("loose")
    p.connect("pg", pg_url)
    p.extract("src", source="pg", query=f"SELECT * FROM {schema}.src")
    p.load("src", to="pg", table=f"{schema}.loose", mode="merge", key="id")
    result = p.run()
    assert result.status == "success", result.error
    assert checksum(pg, f"{schema}.loose") == checksum(pg, f"{schema}.src")
    after = dict(run_sql(pg, f"SELECT id, xmin::text FROM {schema}.loose"))
    assert {k for k in after if before.get(k) != after[k]} == {3, *range(41, 51)}
    assert leftovers(pg, schema) == []
