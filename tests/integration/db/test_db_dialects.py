"""What each database's dialect writes differently, end to end on the real databases.

MariaDB swaps tables with RENAME TABLE and cannot roll DDL back; DuckDB files
merge with UPDATE ... FROM; a database etl_nb has no dialect for gets portable
SQL; PostgreSQL's ``schema:`` option is quoted like every other identifier.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa

from etl_nb.connectors import register
from etl_nb.connectors.sql import Dialect, SqlConnector


def run_sql(engine: sa.Engine, *statements: str) -> list[Any]:
    """Run statements; the rows of the last one (if it returns rows)."""
    rows: list[Any] = []
    with engine.connect() as conn:
        for statement in statements:
            result = conn.execute(sa.text(statement))
            rows = [tuple(r) for r in result.fetchall()] if result.returns_rows else []
    return rows


@pytest.fixture
def maria_tables(mysql: sa.Engine) -> Iterator[None]:
    run_sql(
        mysql,
        "DROP TABLE IF EXISTS m_src",
        "DROP TABLE IF EXISTS m_target",
        "CREATE TABLE m_src (id INT PRIMARY KEY, label VARCHAR(50))",
        "INSERT INTO m_src VALUES (1, 'one'), (2, 'two'), (3, 'three')",
    )
    yield
    run_sql(mysql, "DROP TABLE IF EXISTS m_src", "DROP TABLE IF EXISTS m_target")


def _maria_leftovers(mysql: sa.Engine) -> list[Any]:
    return run_sql(mysql, "SHOW TABLES LIKE '\\_etl\\_nb%'")


@pytest.mark.mysql
@pytest.mark.usefixtures("maria_tables")
def test_mariadb_replace_swaps_in_the_new_table_and_drops_the_old_one(mysql, mysql_url, make_pipeline):
    run_sql(mysql, "CREATE TABLE m_target (id INT, old_column TEXT)", "INSERT INTO m_target VALUES (9, 'x')")
    p = make_pipeline("maria_replace")
    p.connect("maria", mysql_url)
    p.extract("m_src", source="maria", query="SELECT * FROM m_src")
    p.load("m_src", to="maria", table="m_target", mode="replace")

    result = p.run()

    assert result.status == "success", result.error
    assert run_sql(mysql, "SELECT id, label FROM m_target ORDER BY id") == [
        (1, "one"),
        (2, "two"),
        (3, "three"),
    ]
    assert _maria_leftovers(mysql) == []


@pytest.mark.mysql
@pytest.mark.usefixtures("maria_tables")
def test_mariadb_merge_refused_by_the_target_takes_its_added_column_away(mysql, mysql_url, make_pipeline):
    run_sql(
        mysql,
        "CREATE TABLE m_target (id INT PRIMARY KEY, label VARCHAR(50) UNIQUE)",
        "INSERT INTO m_target VALUES (1, 'one'), (5, 'taken')",
    )
    p = make_pipeline("maria_undo")
    p.connect("maria", mysql_url)
    # Row 2 takes the label row 5 holds: the target's unique index refuses the insert at commit.
    p.extract(
        "m_src",
        source="maria",
        query="SELECT id, CASE WHEN id = 2 THEN 'taken' ELSE label END AS label, id * 10 AS extra FROM m_src",
    )
    p.load("m_src", to="maria", table="m_target", mode="merge", key="id")

    result = p.run()

    assert result.status == "failed"
    assert "The target was left as it was." in (result.error or "")
    columns = run_sql(
        mysql,
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND table_name = 'm_target' ORDER BY ordinal_position",
    )
    assert columns == [("id",), ("label",)]
    assert run_sql(mysql, "SELECT id, label FROM m_target ORDER BY id") == [(1, "one"), (5, "taken")]
    assert _maria_leftovers(mysql) == []


@pytest.mark.xfail(
    strict=True,
    reason="duckdb-engine cannot reflect a DuckDB 2.0 table (pg_catalog.pg_collation): a load into an "
    "existing DuckDB table fails, before and after the dialect split",
)
def test_duckdb_file_merge_updates_changed_rows_and_inserts_new_ones(tmp_path: Path, make_pipeline):
    path = tmp_path / "lake.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE events AS SELECT range AS id, 'e' || range AS name FROM range(5)")
    con.execute("CREATE TABLE copy (id BIGINT PRIMARY KEY, name VARCHAR)")
    con.execute("INSERT INTO copy VALUES (0, 'e0'), (1, 'stale'), (7, 'kept')")
    con.close()
    p = make_pipeline("duck_merge")
    p.connect("lake", f"duckdb:///{path}")
    p.extract("events", source="lake", query="SELECT * FROM events")
    p.load("events", to="lake", table="copy", mode="merge", key="id")

    result = p.run()

    assert result.status == "success", result.error
    p.close()
    con = duckdb.connect(str(path))
    assert con.execute("SELECT id, name FROM copy ORDER BY id").fetchall() == [
        (0, "e0"),
        (1, "e1"),
        (2, "e2"),
        (3, "e3"),
        (4, "e4"),
        (7, "kept"),
    ]
    assert con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '_etl_nb%'"
    ).fetchall() == [(0,)]
    con.close()


@register("etl_nb_test_portable_sql")
class PortableSql(SqlConnector):
    """A database SQLAlchemy knows and etl_nb has no dialect for (SQLite, written in portable SQL)."""

    def open(self) -> None:
        """Open as usual, then write every statement in the generic dialect."""
        super().open()
        self.dialect = Dialect(self.engine)


def test_a_database_without_its_own_dialect_merges_with_portable_sql(tmp_path: Path, make_pipeline):
    db = tmp_path / "other.db"
    engine = sa.create_engine(f"sqlite:///{db}", isolation_level="AUTOCOMMIT")
    run_sql(
        engine,
        "CREATE TABLE src (id INTEGER, label TEXT, amount REAL)",
        "INSERT INTO src VALUES (1, 'a', 1.5), (2, 'b', NULL)",
    )
    p = make_pipeline("portable")
    p.connect("other", f"sqlite:///{db}", type="etl_nb_test_portable_sql")
    p.extract("src", source="other", query="SELECT * FROM src")
    p.load("src", to="other", table="copied", mode="merge", key="id")
    p.run().raise_for_status()
    run_sql(
        engine,
        "UPDATE src SET label = 'changed', amount = 2.5 WHERE id = 2",
        "INSERT INTO src VALUES (3, 'c', 3.5)",
    )

    again = p.run()

    assert again.status == "success", again.error
    assert run_sql(engine, "SELECT id, label, amount FROM copied ORDER BY id") == [
        (1, "a", 1.5),
        (2, "changed", 2.5),
        (3, "c", 3.5),
    ]
    engine.dispose()


@pytest.fixture
def mixed_case_schema(pg: sa.Engine) -> Iterator[str]:
    """A PostgreSQL schema whose name only a quoted identifier can reach."""
    name = f"Mixed_{uuid.uuid4().hex[:8]}"
    run_sql(pg, f'CREATE SCHEMA "{name}"')
    yield name
    run_sql(pg, f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.mark.postgres
def test_the_schema_option_reaches_a_mixed_case_schema_for_loads_and_extracts(
    pg, pg_url, mixed_case_schema, make_pipeline
):
    p = make_pipeline("pg_schema")
    p.connect("pg", pg_url, schema=mixed_case_schema)
    p.extract("numbers", source="pg", query="SELECT generate_series(1, 3) AS n")
    p.load("numbers", to="pg", table="numbers", mode="replace")
    p.run().raise_for_status()
    assert run_sql(pg, f'SELECT count(*) FROM "{mixed_case_schema}".numbers') == [(3,)]

    q = make_pipeline("pg_schema_read")
    q.connect("pg", pg_url, schema=mixed_case_schema)
    q.extract("again", source="pg", query="SELECT sum(n) AS total FROM numbers")  # found on the search path
    q.run().raise_for_status()

    assert q.table("again")["total"].to_list() == [6]


@pytest.mark.postgres
@pytest.mark.parametrize("schema", ["public -c statement_timeout=1", "sales; DROP TABLE x", "", 42])
def test_a_schema_option_that_is_no_identifier_is_refused_before_connecting(
    pg, pg_url, make_pipeline, schema
):
    p = make_pipeline("pg_bad_schema")
    p.connect("pg", pg_url, schema=schema)
    p.extract("numbers", source="pg", query="SELECT 1 AS n")
    result = p.run()
    assert result.status == "failed"
    assert "is not a schema name" in str(result.error)
    assert "\n" not in str(result.error)
    # Nothing reached the server as an option: its settings are the defaults.
    assert run_sql(pg, "SHOW statement_timeout") == [("0",)]
