"""PostgreSQL loads take two paths: few rows through psycopg's COPY, many through ADBC.

Whichever path a load takes, the target must get the same column types and
the same values; a missing or empty target is filled, and a load that fails
leaves the target as it was.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest
import sqlalchemy as sa

import etl_nb.connectors.postgres as pg_connector
from etl_nb import Pipeline
from etl_nb.connectors.sql.dialects import TargetTable, dialect_for
from tests.integration.db.test_db_postgres import TYPES_DDL, TYPES_ROWS, checksum, leftovers, run_sql

pytestmark = pytest.mark.postgres

# The bench's source (bench/postgres.py): the 11 types, 20 rows, with NULLs in row 20.
BENCH_ROWS = """
CREATE TABLE {s}.bench AS
SELECT i AS id, (i::bigint * 7919) % 100000 AS customer_id,
       round(((i::bigint * 31) % 10000) / 100.0, 2)::numeric(12, 2) AS amount,
       (i * 1.5)::float8 AS score, 'name é ✓ ' || i AS label, i % 2 = 0 AS flag,
       date '2020-01-01' + (i % 1000)::int AS day,
       timestamp '2020-01-01' + i * interval '1.5 second' AS at,
       timestamptz '2020-01-01 00:00+00' + i * interval '1 second' AS at_tz,
       md5(i::text)::uuid AS uid, jsonb_build_object('k', i, 'tab', E'a\\tb') AS doc
FROM generate_series(1, 19) i;
INSERT INTO {s}.bench (id) VALUES (20)
"""
# DuckDB types that no PostgreSQL extract gives: what a transform may hand a load.
DUCKDB_ROWS = """
SELECT i::INT AS id, i::TINYINT AS tiny, i::HUGEINT AS huge, (i / 3)::REAL AS r,
       TIME '12:34:56.789' AS t, {'a': i, 'b': 'x'} AS st, [i, NULL] AS ints, ['x"y', NULL] AS tags,
       'ab\\x00c'::BLOB AS raw, (TIMESTAMP '2026-03-29 01:30:00' AT TIME ZONE 'UTC') AS at_tz,
       (1 / i::DOUBLE) AS ratio
FROM range(1, 6) t(i)
"""


@pytest.fixture(params=["small", "large"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test's loads through psycopg's COPY (small) or ADBC's ingest (large)."""
    if request.param == "large":
        monkeypatch.setattr(pg_connector, "SMALL_LOAD_ROWS", -1)
    return str(request.param)


def column_types(engine: sa.Engine, schema: str, table: str) -> dict[str, str]:
    rows = run_sql(
        engine,
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = CAST(:t AS regclass) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        params={"t": f"{schema}.{table}"},
    )
    return dict(rows)


def load_query(make: Callable[[str], Pipeline], url: str, query: str, table: str, **load: str) -> Pipeline:
    p = make("paths")
    p.connect("pg", url)
    p.extract("rows", source="pg", query=query)
    p.load("rows", to="pg", table=table, **({"mode": "merge", "key": "id"} | load))
    return p


def load_transform(make: Callable[[str], Pipeline], url: str, sql: str, table: str) -> Pipeline:
    p = make("paths")
    p.connect("pg", url)
    p.transform("rows", sql=sql)
    p.load("rows", to="pg", table=table, mode="merge", key="id")
    return p


def test_both_paths_give_the_same_types_and_values(pg, pg_url, schema, make_pipeline, monkeypatch):
    run_sql(pg, TYPES_DDL.format(s=schema), TYPES_ROWS.format(s=schema), BENCH_ROWS.format(s=schema))
    for source in ("src", "bench"):
        for name, limit in (("small", pg_connector.SMALL_LOAD_ROWS), ("large", -1)):
            monkeypatch.setattr(pg_connector, "SMALL_LOAD_ROWS", limit)
            query = f"SELECT * FROM {schema}.{source}"
            load_query(make_pipeline, pg_url, query, f"{schema}.{source}_{name}").run().raise_for_status()
        small, large = f"{source}_small", f"{source}_large"
        assert column_types(pg, schema, small) == column_types(pg, schema, large)
        assert checksum(pg, f"{schema}.{small}") == checksum(pg, f"{schema}.{large}")
        assert checksum(pg, f"{schema}.{small}") == checksum(pg, f"{schema}.{source}")
    assert list(column_types(pg, schema, "bench_small").values()) == [
        "integer",
        "bigint",
        "numeric(12,2)",
        "double precision",
        "text",
        "boolean",
        "date",
        "timestamp without time zone",
        "timestamp with time zone",
        "uuid",
        "jsonb",
    ]


def test_duckdb_types_arrive_alike_on_both_paths(pg, pg_url, schema, make_pipeline, monkeypatch):
    for name, limit in (("small", pg_connector.SMALL_LOAD_ROWS), ("large", -1)):
        monkeypatch.setattr(pg_connector, "SMALL_LOAD_ROWS", limit)
        load_transform(make_pipeline, pg_url, DUCKDB_ROWS, f"{schema}.duck_{name}").run().raise_for_status()
    assert column_types(pg, schema, "duck_small") == column_types(pg, schema, "duck_large")
    assert checksum(pg, f"{schema}.duck_small") == checksum(pg, f"{schema}.duck_large")
    first = run_sql(pg, f"SELECT st, ints, tags, raw, r, ratio FROM {schema}.duck_small WHERE id = 3")[0]
    assert first[0] == {"a": 3, "b": "x"}
    assert first[1:4] == ([3, None], ['x"y', None], b"ab\x00c")
    assert first[4] == pytest.approx(1.0)
    assert first[5] == 1 / 3


def test_a_merge_into_a_missing_table_creates_it_with_its_key(pg, pg_url, schema, make_pipeline, path):
    query = "SELECT i AS id, 'v' || i AS v FROM generate_series(1, 10) i"
    result = load_query(make_pipeline, pg_url, query, f"{schema}.fresh").run().raise_for_status()
    assert result.steps[f"load:rows:pg:{schema}.fresh"].detail["inserted"] == 10
    assert run_sql(pg, f"SELECT count(*), min(v) FROM {schema}.fresh")[0] == (10, "v1")
    keys = run_sql(
        pg, f"SELECT indexdef FROM pg_indexes WHERE schemaname = '{schema}' AND tablename = 'fresh'"
    )
    assert [k[0] for k in keys] == [f"CREATE UNIQUE INDEX fresh_pkey ON {schema}.fresh USING btree (id)"]
    assert leftovers(pg, schema) == []


def test_a_merge_into_an_empty_table_fills_it(pg, pg_url, schema, make_pipeline, path):
    run_sql(pg, f"CREATE TABLE {schema}.empty (id integer PRIMARY KEY, v text, n numeric(6, 1))")
    query = "SELECT i AS id, 'v' || i AS v, (i * 0.5)::numeric(6, 1) AS n FROM generate_series(1, 10) i"
    result = load_query(make_pipeline, pg_url, query, f"{schema}.empty").run().raise_for_status()
    assert result.steps[f"load:rows:pg:{schema}.empty"].detail["inserted"] == 10
    assert run_sql(pg, f"SELECT count(*), sum(n) FROM {schema}.empty")[0] == (10, pytest.approx(27.5))
    assert column_types(pg, schema, "empty") == {"id": "integer", "v": "text", "n": "numeric(6,1)"}
    assert leftovers(pg, schema) == []


def test_a_failed_load_leaves_the_target_unchanged(pg, pg_url, schema, make_pipeline, path):
    run_sql(
        pg,
        f"CREATE TABLE {schema}.kept (id integer PRIMARY KEY, v text)",
        f"INSERT INTO {schema}.kept SELECT i, 'old' || i FROM generate_series(1, 5) i",
    )
    before = checksum(pg, f"{schema}.kept")
    # PostgreSQL refuses a NUL character in text: the staging fails on the server, mid-copy.
    bad = "SELECT i::INT AS id, CASE WHEN i = 3 THEN 'a' || chr(0) ELSE 'new' END AS v FROM range(1, 8) t(i)"
    result = load_transform(make_pipeline, pg_url, bad, f"{schema}.kept").run()
    assert result.status == "failed"
    # And a duplicate key, found on the staged rows.
    dupes = "SELECT 1 AS id, 'x' AS v UNION ALL SELECT 1, 'y'"
    result = load_transform(make_pipeline, pg_url, dupes, f"{schema}.kept").run()
    assert result.status == "failed"
    assert "more than once" in str(result.error)
    assert checksum(pg, f"{schema}.kept") == before
    assert leftovers(pg, schema) == []


def test_importing_the_connector_does_not_import_adbc():
    code = "import etl_nb.connectors.postgres, sys; print('adbc_driver_manager' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_the_catalog_query_sees_what_sqlalchemy_reflection_sees(pg, schema):
    run_sql(
        pg,
        TYPES_DDL.format(s=schema),
        f"CREATE TYPE {schema}.mood AS ENUM ('ok', 'sad')",
        f"CREATE DOMAIN {schema}.positive AS integer CHECK (VALUE > 0)",
        f'CREATE TABLE {schema}."Mixed Case" (m {schema}.mood, p {schema}.positive, '
        "t timestamp(3), v varchar(12), i interval, gone int)",
        f'ALTER TABLE {schema}."Mixed Case" DROP COLUMN gone',
        f"CREATE VIEW {schema}.src_view AS SELECT id, label FROM {schema}.src",
    )
    dialect = dialect_for(pg)
    with pg.connect() as conn:
        inspector = sa.inspect(conn)
        for table in ("src", "Mixed Case", "src_view"):
            found = dialect.describe(conn, schema, table)
            assert (found.schema_exists, found.exists) == (True, True)
            columns = inspector.get_columns(table, schema=schema)
            reflected = {c["name"]: (type(c["type"]), str(c["type"])) for c in columns}
            assert {name: (type(kind), str(kind)) for name, kind in found.columns.items()} == reflected
        assert dialect.describe(conn, schema, "missing") == TargetTable(True, False, {})
        assert dialect.describe(conn, f"{schema}_missing", "src") == TargetTable(False, False, {})
        assert dialect.describe(conn, None, "surely_missing_table") == TargetTable(True, False, {})


def test_edge_values_arrive_alike_on_both_paths(pg, pg_url, schema, make_pipeline, monkeypatch):
    edges = (
        "SELECT 1::INT AS id, 'infinity'::DOUBLE AS x, 'nan'::DOUBLE AS y, -0.0::DOUBLE AS z, "
        "'infinity'::TIMESTAMP AS at, '' AS empty, NULL::VARCHAR AS nothing"
    )
    # A year past 9999 has no Python datetime: that load takes ADBC even when it is small.
    far = "SELECT 1::INT AS id, TIMESTAMP '12000-01-01 00:00:00' AS far"
    for name, limit in (("small", pg_connector.SMALL_LOAD_ROWS), ("large", -1)):
        monkeypatch.setattr(pg_connector, "SMALL_LOAD_ROWS", limit)
        load_transform(make_pipeline, pg_url, edges, f"{schema}.edge_{name}").run().raise_for_status()
        load_transform(make_pipeline, pg_url, far, f"{schema}.far_{name}").run().raise_for_status()
    assert checksum(pg, f"{schema}.edge_small") == checksum(pg, f"{schema}.edge_large")
    row = run_sql(pg, f"SELECT x::text, y::text, z::text, empty, nothing FROM {schema}.edge_small")[0]
    assert tuple(row) == ("Infinity", "NaN", "-0", "", None)
    assert run_sql(pg, f"SELECT far::text FROM {schema}.far_small")[0][0] == "12000-01-01 00:00:00"
