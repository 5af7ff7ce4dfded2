"""A second and third dialect: MariaDB (mysql+pymysql://) and SQLite, plus DuckDB files."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa


def run_sql(engine: sa.Engine, *statements: str, params: dict[str, Any] | None = None) -> list[Any]:
    """Run statements; the rows of the last one (if it returns rows)."""
    rows: list[Any] = []
    with engine.connect() as conn:
        for statement in statements:
            result = conn.execute(sa.text(statement), params or {})
            rows = list(result.fetchall()) if result.returns_rows else []
    return rows


@pytest.fixture
def mysql_tables(mysql):
    run_sql(
        mysql,
        "DROP TABLE IF EXISTS src",
        "DROP TABLE IF EXISTS target",
        "CREATE TABLE src (id INT PRIMARY KEY, amount DECIMAL(12,2), label VARCHAR(100), "
        "happened DATETIME(6), day DATE, doc JSON, flag BOOLEAN)",
        "INSERT INTO src VALUES (1, 10.50, 'é 中文 🎉', '2026-01-02 03:04:05.123456', '2026-01-02', "
        "'{\"a\": 1}', true), (2, -0.01, 'b', '2026-02-01 00:00:00', '2026-02-01', '[]', false), "
        "(3, NULL, NULL, NULL, NULL, NULL, NULL)",
    )
    yield
    run_sql(mysql, "DROP TABLE IF EXISTS src", "DROP TABLE IF EXISTS target")


@pytest.mark.mysql
@pytest.mark.usefixtures("mysql_tables")
def test_mariadb_extract_and_merge(mysql, mysql_url, make_pipeline):
    p = make_pipeline("maria")
    p.connect("maria", mysql_url)
    p.extract("src", source="maria", query="SELECT * FROM src WHERE id >= {{ low }}")
    p.transform("shaped", sql="SELECT id, amount, label, happened, day, doc, flag FROM src")
    p.load("shaped", to="maria", table="target", mode="merge", key="id")
    result = p.run(params={"low": 1})
    assert result.status == "success", result.error
    frame = p.table("src")
    assert str(frame.schema["amount"]) == "Decimal(precision=12, scale=2)"
    rows = run_sql(mysql, "SELECT id, amount, label, happened, day, doc FROM target ORDER BY id")
    assert rows[0] == (
        1,
        Decimal("10.50"),
        "é 中文 🎉",
        dt.datetime(2026, 1, 2, 3, 4, 5, 123456),
        dt.date(2026, 1, 2),
        '{"a": 1}',
    )
    assert rows[2] == (3, None, None, None, None, None)

    run_sql(
        mysql,
        "UPDATE src SET label = 'changed' WHERE id = 2",
        "INSERT INTO src (id, label) VALUES (4, 'new')",
    )
    again = p.run(params={"low": 1})
    assert again.status == "success", again.error
    assert run_sql(mysql, "SELECT id, label FROM target ORDER BY id") == [
        (1, "é 中文 🎉"),
        (2, "changed"),
        (3, None),
        (4, "new"),
    ]
    assert run_sql(mysql, "SHOW TABLES LIKE '\\_etl\\_nb%'") == []


@pytest.mark.mysql
@pytest.mark.usefixtures("mysql_tables")
def test_mariadb_merge_with_duplicate_keys_changes_nothing(mysql, mysql_url, make_pipeline):
    run_sql(
        mysql,
        "CREATE TABLE target (id INT PRIMARY KEY, label VARCHAR(100))",
        "INSERT INTO target VALUES (1, 'keep')",
    )
    p = make_pipeline("maria_dupes")
    p.connect("maria", mysql_url)
    p.extract("src", source="maria", query="SELECT id, label FROM src UNION ALL SELECT id, label FROM src")
    p.load("src", to="maria", table="target", mode="merge", key="id")
    result = p.run()
    assert result.status == "failed"
    assert "appear more than once" in (result.error or "")
    assert run_sql(mysql, "SELECT * FROM target") == [(1, "keep")]


@pytest.mark.mysql
def test_mariadb_wrong_password_keeps_the_secret(mysql, mysql_url, make_pipeline, monkeypatch):
    run_sql(mysql, "CREATE USER IF NOT EXISTS 'etl_nb_pw'@'%' IDENTIFIED BY 'right-password-1'")
    try:
        monkeypatch.setenv("ETL_TEST_MYSQL_PW", "wrong-password-9")
        url = sa.engine.make_url(mysql_url)
        p = make_pipeline("maria_pw")
        p.connect(
            "maria", f"mysql+pymysql://etl_nb_pw:${{ETL_TEST_MYSQL_PW}}@{url.host}:{url.port}/{url.database}"
        )
        p.extract("rows", source="maria", query="SELECT 1 AS x")
        result = p.run()
        message = result.error or ""
        assert result.status == "failed"
        assert "refused the login" in message
        assert "Check the user and the password" in message
        assert "wrong-password-9" not in message
        assert "\n" not in message
    finally:
        run_sql(mysql, "DROP USER IF EXISTS 'etl_nb_pw'@'%'")


@pytest.mark.mysql
def test_mariadb_unknown_table_and_missing_database(mysql_url, make_pipeline):
    p = make_pipeline("maria_bad")
    p.connect("maria", mysql_url)
    p.extract("rows", source="maria", query="SELECT * FROM no_such_table")
    message = p.run().error or ""
    assert message.startswith("The extract for step 'rows' on connection 'maria'")
    assert "no_such_table" in message
    assert "doesn't exist" in message

    q = make_pipeline("maria_nodb")
    q.connect("maria", sa.engine.make_url(mysql_url).set(database="no_such_db_etl").render_as_string(False))
    q.extract("rows", source="maria", query="SELECT 1")
    assert "does not exist" in (q.run().error or "")


# --- SQLite and DuckDB files: no server needed ----------------------------------------------------


def test_sqlite_extract_merge_and_replace(tmp_path: Path, make_pipeline):
    db = tmp_path / "shop.db"
    engine = sa.create_engine(f"sqlite:///{db}", isolation_level="AUTOCOMMIT")
    run_sql(
        engine,
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, amount REAL, who TEXT)",
        "INSERT INTO orders VALUES (1, 1.5, 'a'), (2, 2.5, 'b'), (3, NULL, 'c')",
    )
    p = make_pipeline("lite")
    p.connect("shop", "sqlite:///shop.db")  # relative to the pipeline's folder
    p.extract("orders", source="shop", query="SELECT * FROM orders WHERE who <> {{ who }}", incremental="id")
    p.load("orders", to="shop", table="copy", mode="merge", key="id")
    assert p.run(params={"who": "b"}).status == "success"
    assert run_sql(engine, "SELECT * FROM copy ORDER BY id") == [(1, 1.5, "a"), (3, None, "c")]
    run_sql(engine, "INSERT INTO orders VALUES (4, 4.0, 'd')")
    second = p.run(params={"who": "b"})
    assert second.steps["orders"].rows == 1
    assert run_sql(engine, "SELECT count(*) FROM copy")[0][0] == 3
    engine.dispose()


def test_duckdb_file_extract_and_load(tmp_path: Path, make_pipeline):
    path = tmp_path / "lake.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE events AS SELECT range AS id, 'e' || range AS name FROM range(1000)")
    con.close()
    p = make_pipeline("duck")
    p.connect("lake", f"duckdb:///{path}")
    p.extract("events", source="lake", query="SELECT * FROM events WHERE id < {{ n }}")
    p.load("events", to="lake", table="copy", mode="replace")
    result = p.run(params={"n": 10})
    assert result.status == "success", result.error
    p.close()
    con = duckdb.connect(str(path))
    assert con.execute("SELECT count(*), max(name) FROM copy").fetchall() == [(10, "e9")]
    con.close()


def _sqlite_orders(path: Path, rows: list[tuple[Any, ...]]) -> None:
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER, note TEXT, amount REAL)")
        db.executemany("INSERT INTO orders VALUES (?, ?, ?)", rows)


def test_a_column_null_in_the_first_batch_keeps_its_later_values(tmp_path: Path, make_pipeline):
    rows = [(i, None if i < 70_000 else f"n{i}", None if i < 100 else i / 2) for i in range(80_000)]
    _sqlite_orders(tmp_path / "shop.db", rows)
    p = make_pipeline("late_values")
    p.connect("shop", f"sqlite:///{tmp_path / 'shop.db'}")
    p.extract("orders", source="shop", query="SELECT * FROM orders")
    p.run().raise_for_status()
    frame = p.table("orders")
    assert frame["note"].null_count() == 70_000
    assert frame.filter(frame["id"] == 75_000)["note"].to_list() == ["n75000"]
    assert frame["amount"].dtype.is_float()


def test_an_incremental_run_with_no_new_rows_succeeds_and_loads_nothing(tmp_path: Path, make_pipeline):
    _sqlite_orders(tmp_path / "shop.db", [(1, "a", 1.5), (2, None, 2.5)])
    p = make_pipeline("no_new_rows")
    p.connect("shop", f"sqlite:///{tmp_path / 'shop.db'}")
    p.extract("orders", source="shop", query="SELECT * FROM orders", incremental="id")
    p.load("orders", to="shop", table="copied", mode="merge", key="id")
    p.run().raise_for_status()

    again = p.run()  # the window is empty: no rows, so no types from values

    assert again.status == "success", again.error
    assert again.steps["load:orders:shop:copied"].rows == 0
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'shop.db'}")
    assert run_sql(engine, "SELECT id, note, amount FROM copied ORDER BY id") == [
        (1, "a", 1.5),
        (2, None, 2.5),
    ]
    engine.dispose()
