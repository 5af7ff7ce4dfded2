"""SQL errors in fused steps feeding a database load, and zero-row or all-NULL extracts."""

from __future__ import annotations

import gc
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

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
