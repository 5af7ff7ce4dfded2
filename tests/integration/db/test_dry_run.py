"""Dry-run loads against real databases: they say what the load would do and change nothing.

A merge's dry-run reports rows inserted, updated (with the columns that
change) and left unchanged; the real merge that follows reports the same
counts and does exactly that. Replace and append dry-runs report the rows
before and after. The target's checksum never moves in a dry-run.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from etl_nb import Pipeline
from etl_nb.results import load_summary
from etl_nb.spec import parse_cell

TARGET_ROWS = [(1, 10.0, "open"), (2, 20.0, "open"), (3, 30.0, "paid"), (4, 40.0, "open"), (5, 50.0, "open")]
# id 3 unchanged, 4 a new amount, 5 a new amount and status, 6-8 new.
STEP_SQL = """
SELECT * FROM (VALUES
  (3, 30.0, 'paid'), (4, 41.0, 'open'), (5, 55.0, 'paid'),
  (6, 60.0, 'open'), (7, 70.0, 'open'), (8, 80.0, 'open')
) AS v(id, amount, status)
"""
EXPECTED_MERGE = {
    "inserted": 3,
    "updated": 2,
    "unchanged": 1,
    "changed_columns": {"amount": 2, "status": 1},
}


def _checksum(engine: sa.Engine, table: str) -> str:
    """The target's rows, in key order, hashed: any write changes it."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY id")).all()
    return hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()


def _make_target(engine: sa.Engine, table: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, amount FLOAT, status TEXT)"))
        conn.execute(
            sa.text(f"INSERT INTO {table} VALUES (:id, :amount, :status)"),
            [{"id": i, "amount": a, "status": s} for i, a, s in TARGET_ROWS],
        )


def _pipeline(make: Callable[[str], Pipeline], url: str, table: str, mode: str, dry: bool) -> Pipeline:
    p = make("dry_run")
    p.connect("db", url)
    p.transform("changes", sql=STEP_SQL)
    key = ["id"] if mode == "merge" else None
    p.load("changes", to="db", table=table, mode=mode, key=key, dry_run=dry)  # type: ignore[arg-type]
    return p


@pytest.fixture(params=["postgres", "mysql", "sqlite"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, sa.Engine]:
    """(URL, engine) of a real database of each kind, with a table name of the test's own."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'target.db'}"
        return url, sa.create_engine(url)
    url = request.getfixturevalue("pg_url" if request.param == "postgres" else "mysql_url")
    return url, request.getfixturevalue("pg" if request.param == "postgres" else "mysql")


def test_merge_dry_run_counts_what_the_real_merge_then_does_and_writes_nothing(
    database: tuple[str, sa.Engine], make_pipeline: Callable[[str], Pipeline]
) -> None:
    url, engine = database
    table = f"dry_{uuid.uuid4().hex[:8]}"
    _make_target(engine, table)
    before = _checksum(engine, table)

    dry = _pipeline(make_pipeline, url, table, "merge", dry=True).run().raise_for_status()
    (load,) = [s for s in dry.steps.values() if s.kind == "load"]
    assert load.detail == {"dry_run": True, **EXPECTED_MERGE}
    assert _checksum(engine, table) == before
    assert dry.rows == 0
    with engine.connect() as conn:  # no staging table left behind either
        names = sa.inspect(conn).get_table_names()
    assert [n for n in names if n.startswith("_etl_nb_stage_")] == []

    real = _pipeline(make_pipeline, url, table, "merge", dry=False).run().raise_for_status()
    (load,) = [s for s in real.steps.values() if s.kind == "load"]
    assert load.detail == EXPECTED_MERGE
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT id, amount, status FROM {table} ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [
        (1, 10.0, "open"),
        (2, 20.0, "open"),
        (3, 30.0, "paid"),
        (4, 41.0, "open"),
        (5, 55.0, "paid"),
        (6, 60.0, "open"),
        (7, 70.0, "open"),
        (8, 80.0, "open"),
    ]
    again = _pipeline(make_pipeline, url, table, "merge", dry=True).run().raise_for_status()
    (load,) = [s for s in again.steps.values() if s.kind == "load"]
    assert load.detail is not None
    assert (load.detail["inserted"], load.detail["updated"], load.detail["unchanged"]) == (0, 0, 6)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("replace", {"rows_before": 5, "rows_after": 6}),
        ("append", {"rows_added": 6, "rows_before": 5, "rows_after": 11}),
    ],
)
def test_replace_and_append_dry_runs_report_rows_before_and_after_and_write_nothing(
    database: tuple[str, sa.Engine],
    make_pipeline: Callable[[str], Pipeline],
    mode: str,
    expected: dict[str, int],
) -> None:
    url, engine = database
    table = f"dry_{uuid.uuid4().hex[:8]}"
    _make_target(engine, table)
    before = _checksum(engine, table)
    run = _pipeline(make_pipeline, url, table, mode, dry=True).run().raise_for_status()
    (load,) = [s for s in run.steps.values() if s.kind == "load"]
    assert load.detail == {"dry_run": True, **expected}
    assert _checksum(engine, table) == before


def test_merge_dry_run_into_a_missing_table_creates_nothing(
    pg_url: str, pg: sa.Engine, make_pipeline: Callable[[str], Pipeline]
) -> None:
    table = f"nothing_{uuid.uuid4().hex[:8]}"
    run = _pipeline(make_pipeline, pg_url, f"fresh_{table}.{table}", "merge", dry=True).run()
    (load,) = [s for s in run.raise_for_status().steps.values() if s.kind == "load"]
    assert load.detail == {
        "dry_run": True,
        "inserted": 6,
        "updated": 0,
        "unchanged": 0,
        "changed_columns": {},
    }
    with pg.connect() as conn:
        assert f"fresh_{table}" not in sa.inspect(conn).get_schema_names()


def test_merge_dry_run_counts_a_column_the_target_lacks_as_changed_where_it_has_a_value(
    pg_url: str, pg: sa.Engine, make_pipeline: Callable[[str], Pipeline]
) -> None:
    table = f"dry_{uuid.uuid4().hex[:8]}"
    _make_target(pg, table)
    before = _checksum(pg, table)
    p = make_pipeline("dry_run")
    p.connect("db", pg_url)
    p.transform("changes", sql="SELECT 3 AS id, 30.0 AS amount, 'paid' AS status, 'vip' AS note")
    p.load("changes", to="db", table=table, mode="merge", key=["id"], dry_run=True)
    (load,) = [s for s in p.run().raise_for_status().steps.values() if s.kind == "load"]
    assert load.detail == {
        "dry_run": True,
        "inserted": 0,
        "updated": 1,
        "unchanged": 0,
        "changed_columns": {"note": 1},
        "columns_added": ["note"],
    }
    assert _checksum(pg, table) == before
    with pg.connect() as conn:
        assert "note" not in {c["name"] for c in sa.inspect(conn).get_columns(table)}


def test_a_real_merge_says_which_columns_it_added_to_the_target(
    pg_url: str, pg: sa.Engine, make_pipeline: Callable[[str], Pipeline]
) -> None:
    table = f"dry_{uuid.uuid4().hex[:8]}"
    _make_target(pg, table)
    p = make_pipeline("dry_run")
    p.connect("db", pg_url)
    p.transform("changes", sql="SELECT 9 AS id, 90.0 AS amount, 'open' AS status, 'vip' AS note")
    p.load("changes", to="db", table=table, mode="merge", key=["id"])
    (load,) = [s for s in p.run().raise_for_status().steps.values() if s.kind == "load"]
    assert load.detail is not None
    assert load.detail["columns_added"] == ["note"]
    assert load.detail["inserted"] == 1
    summary = "inserted 1, updated 0, left 0 unchanged; added column note to the target"
    assert load_summary(load.detail) == summary


def test_the_load_line_takes_dry_run() -> None:
    load = parse_cell("load changes --to db --table t --mode merge --key id --dry-run")
    assert getattr(load, "dry_run", None) is True
    assert getattr(parse_cell("load changes --to db --table t"), "dry_run", None) is False


def test_run_dry_run_makes_every_load_a_dry_run(
    pg_url: str, pg: sa.Engine, make_pipeline: Callable[[str], Pipeline]
) -> None:
    table = f"dry_{uuid.uuid4().hex[:8]}"
    _make_target(pg, table)
    before = _checksum(pg, table)
    p = _pipeline(make_pipeline, pg_url, table, "merge", dry=False)
    run = p.run(dry_run=True).raise_for_status()
    (load,) = [s for s in run.steps.values() if s.kind == "load"]
    assert load.detail == {"dry_run": True, **EXPECTED_MERGE}
    assert _checksum(pg, table) == before
    record = p.store.get_run(run.run_id)
    assert record is not None
    (stored,) = [s for s in record.steps if s.kind == "load"]
    assert stored.detail == load.detail
