"""SQL errors in fused steps feeding a database load, and zero-row or all-NULL extracts."""

from __future__ import annotations

import gc
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from etl_nb import RetryPolicy
from etl_nb.connectors.postgres import PostgresConnector

pytestmark = pytest.mark.postgres

ROWS = 1_000_000  # about 110 MB: the source still sends when the load stops at row FAIL_AT
FAIL_AT = 100_000  # in the third of the source's 4 MB batches


def run_sql(engine: sa.Engine, *statements: str, params: dict[str, Any] | None = None) -> list[Any]:
    rows: list[Any] = []
    with engine.connect() as conn:
        for statement in statements:
            result = conn.execute(sa.text(statement), params or {})
            rows = list(result.fetchall()) if result.returns_rows else []
    return rows


def _big_source(pg: sa.Engine, schema: str) -> None:
    run_sql(
        pg,
        f"CREATE TABLE {schema}.src AS "
        f"SELECT g AS id, repeat('x', 100) AS pad FROM generate_series(1, {ROWS}) g",
    )


def _sessions_on(pg: sa.Engine, table: str) -> list[Any]:
    """Other sessions still running, or holding a transaction, on a query that names ``table``."""
    return run_sql(
        pg,
        "SELECT pid, state, left(query, 80) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)') "
        "AND query LIKE :q",
        params={"q": f"%{table}%"},
    )


def _assert_released(pg: sa.Engine, table: str) -> None:
    """No session still reads ``table`` (ended here if one does, so the schema can be dropped)."""
    gc.collect()
    left = _sessions_on(pg, table)
    for pid, _, _ in left:
        run_sql(pg, f"SELECT pg_terminate_backend({pid})")
    assert left == []
    _alter_quickly(pg, table)


def _alter_quickly(pg: sa.Engine, table: str) -> None:
    with pg.connect() as conn:
        conn.execute(sa.text("SET lock_timeout = '2s'"))
        conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN x int"))


def _count_writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = PostgresConnector.write

    def counted(self: PostgresConnector, request: Any) -> Any:
        calls.append(1)
        return original(self, request)

    monkeypatch.setattr(PostgresConnector, "write", counted)
    return calls


def test_a_sql_error_in_a_fused_transform_feeding_a_database_load_names_the_transform(
    tmp_path: Path, make_pipeline
):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "o.csv").write_text("id,amount\n1,2.5\n2,3.5\n")
    p = make_pipeline("fused_sql_error")
    p.connect("lake", str(tmp_path / "data"))
    p.connect("db", f"sqlite:///{tmp_path / 'target.db'}")
    p.extract("o", source="lake", path="o.csv")
    p.transform("t", sql="SELECT id,\n  nosuchcol\nFROM o")
    p.load("t", to="db", table="x", mode="replace")
    result = p.run()
    assert result.status == "failed"
    assert (result.error or "").startswith("SQL error in transform 't'"), result.error
    assert "nosuchcol" in (result.error or "")


def _columns(pg: sa.Engine, schema: str, table: str) -> dict[str, str]:
    rows = run_sql(
        pg,
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = :s AND table_name = :t ORDER BY ordinal_position",
        params={"s": schema, "t": table},
    )
    return {r[0]: r[1] for r in rows}


def _sqlite_source(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER, v INTEGER, amt REAL)")


def test_replace_with_no_rows_or_all_null_columns_keeps_the_tables_types(
    pg, pg_url, schema, make_pipeline, tmp_path: Path
):
    _sqlite_source(tmp_path / "src.db")
    with sqlite3.connect(tmp_path / "src.db") as db:
        db.execute("INSERT INTO t VALUES (1, NULL, NULL), (2, NULL, NULL)")
    run_sql(pg, f"CREATE TABLE {schema}.typed (id bigint, v bigint, amt double precision, d date)")
    typed = _columns(pg, schema, "typed")
    for query in (
        "SELECT id, v, amt, NULL AS d FROM t WHERE id > 100",  # an empty window
        "SELECT id, v, amt, NULL AS d FROM t",  # rows whose columns are all NULL
    ):
        p = make_pipeline("replace_nulls")
        p.connect("src", f"sqlite:///{tmp_path / 'src.db'}")
        p.connect("pg", pg_url)
        p.extract("e", source="src", query=query)
        p.load("e", to="pg", table=f"{schema}.typed", mode="replace")
        result = p.run()
        assert result.status == "success", result.error
        assert _columns(pg, schema, "typed") == typed, query
    assert run_sql(pg, f"SELECT count(*), count(v) FROM {schema}.typed")[0] == (2, 0)


@pytest.mark.parametrize("mode", ["append", "replace", "merge"])
def test_a_first_extract_with_no_rows_and_no_types_creates_no_table(
    pg, pg_url, schema, make_pipeline, tmp_path: Path, mode: str
):
    _sqlite_source(tmp_path / "src.db")

    def run() -> Any:
        p = make_pipeline("empty_first")
        p.connect("src", f"sqlite:///{tmp_path / 'src.db'}")
        p.connect("pg", pg_url)
        p.extract("e", source="src", query="SELECT id, v, amt FROM t")
        p.load("e", to="pg", table=f"{schema}.fresh", mode=mode, key="id" if mode == "merge" else None)
        return p.run()

    first = run()
    assert first.status == "success", first.error
    assert first.steps[f"load:e:pg:{schema}.fresh"].rows == 0
    assert run_sql(pg, f"SELECT to_regclass('{schema}.fresh') IS NULL")[0][0]
    assert (
        run_sql(
            pg,
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = :s",
            params={"s": schema},
        )[0][0]
        == 0
    )  # no staging table left either
    with sqlite3.connect(tmp_path / "src.db") as db:
        db.execute("INSERT INTO t VALUES (1, 10, 1.5), (2, 20, 2.5)")
    second = run()
    assert second.status == "success", second.error
    assert _columns(pg, schema, "fresh") == {"id": "bigint", "v": "bigint", "amt": "double precision"}
    assert run_sql(pg, f"SELECT sum(v) FROM {schema}.fresh")[0][0] == 30


@pytest.mark.postgres
def test_a_load_failing_midstream_closes_the_source_session_and_its_lock(pg, pg_url, schema, make_pipeline):
    _big_source(pg, schema)
    p = make_pipeline("midstream_load")
    p.connect("pg", pg_url)
    p.extract("src", source="pg", query=f"SELECT id, pad FROM {schema}.src")
    # A value past the first batch does not convert: DuckDB stops reading the stream there.
    p.transform(
        "shaped",
        sql=f"SELECT CAST(CASE WHEN id = {FAIL_AT} THEN 'boom' ELSE CAST(id AS VARCHAR) END AS INTEGER) "
        "AS id, pad FROM src",
    )
    p.load("shaped", to="pg", table=f"{schema}.out", mode="replace")
    result = p.run()
    assert result.status == "failed"
    assert result.steps["src"].rows is None  # it was streamed
    _assert_released(pg, f"{schema}.src")
    assert run_sql(pg, f"SELECT to_regclass('{schema}.out') IS NULL")[0][0]


@pytest.mark.postgres
def test_a_source_failing_midstream_fails_the_load_once_with_the_sources_words(
    pg, pg_url, schema, make_pipeline, monkeypatch
):
    _big_source(pg, schema)
    writes = _count_writes(monkeypatch)
    p = make_pipeline("midstream_source")
    p.retry = RetryPolicy(attempts=3, initial=0.01, jitter=0)
    p.connect("pg", pg_url)
    p.extract(
        "src",
        source="pg",
        query=f"SELECT id, pad, 1 / (CASE WHEN id = {FAIL_AT} THEN 0 ELSE 1 END) AS one FROM {schema}.src",
    )
    p.load("src", to="pg", table=f"{schema}.out", mode="replace")
    result = p.run()
    assert result.status == "failed"
    error = result.error or ""
    assert "division by zero" in error
    assert error.startswith("The extract for step 'src'"), error  # the source's words, not nested
    assert "The load" not in error
    assert "read twice" not in error
    assert "retried" not in error
    assert len(writes) == 1
    _assert_released(pg, f"{schema}.src")
    assert run_sql(pg, f"SELECT to_regclass('{schema}.out') IS NULL")[0][0]


@pytest.mark.postgres
def test_a_source_lost_midstream_is_not_retried_into_a_second_read(
    pg, pg_url, schema, make_pipeline, monkeypatch
):
    _big_source(pg, schema)
    writes = _count_writes(monkeypatch)
    marker = f"{schema}.src WHERE id <= {FAIL_AT}"

    def kill() -> None:
        for _ in range(200):
            found = run_sql(
                pg,
                "SELECT pid FROM pg_stat_activity WHERE query LIKE :m AND query LIKE '%pg_sleep%' "
                "AND pid <> pg_backend_pid()",
                params={"m": f"%{marker}%"},
            )
            if found:
                time.sleep(1)  # the first rows are in the load by now; the source sleeps
                run_sql(pg, f"SELECT pg_terminate_backend({found[0][0]})")
                return
            time.sleep(0.05)

    p = make_pipeline("midstream_lost")
    p.retry = RetryPolicy(attempts=3, initial=0.01, jitter=0)
    p.connect("pg", pg_url)
    p.extract(
        "src",
        source="pg",
        query=f"SELECT id, pad FROM {marker} UNION ALL SELECT 0, pg_sleep(8)::text",
    )
    p.load("src", to="pg", table=f"{schema}.out", mode="replace")
    killer = threading.Thread(target=kill)
    killer.start()
    try:
        result = p.run()
    finally:
        killer.join()
    assert result.status == "failed"
    error = result.error or ""
    assert "terminating connection" in error, error
    assert "The load" not in error
    assert "read twice" not in error
    assert "retried" not in error
    assert len(writes) == 1
    assert run_sql(pg, f"SELECT to_regclass('{schema}.out') IS NULL")[0][0]
    _assert_released(pg, f"{schema}.src")
