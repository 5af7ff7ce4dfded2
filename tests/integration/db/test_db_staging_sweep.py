"""Staging tables a killed run left behind are dropped by the next load; a live run's never are."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from etl_nb import Pipeline
from etl_nb.connectors.sql.load import STAGING_PREFIX, staging_name

pytestmark = pytest.mark.postgres


def _dead_pid() -> int:
    """The pid of a process that has just exited (not reused this quickly on Linux)."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], check=True, capture_output=True, text=True
    )
    return int(child.stdout)


def _tables(pg: sa.Engine, schema: str) -> set[str]:
    return set(sa.inspect(pg).get_table_names(schema=schema))


def test_a_load_drops_the_staging_a_killed_run_left_and_keeps_a_live_runs(
    pg: sa.Engine, pg_url: str, schema: str, make_pipeline: Callable[[str], Pipeline]
) -> None:
    mine = staging_name("run-alive")  # named by this (live) process
    dead_pid = _dead_pid()
    dead = mine.replace(f"{STAGING_PREFIX}{os.getpid()}_", f"{STAGING_PREFIX}{dead_pid}_", 1)
    with pg.begin() as conn:
        for name in (mine, dead):
            conn.execute(sa.text(f'CREATE TABLE {schema}."{name}" (id int)'))
        conn.execute(sa.text(f'CREATE TABLE {schema}."{STAGING_PREFIX}not_ours" (id int)'))
    assert {mine, dead} <= _tables(pg, schema)

    p = make_pipeline("sweep")
    p.connect("pg", pg_url)
    p.transform("t", sql="SELECT 1 AS id")
    p.load("t", to="pg", table=f"{schema}.target")
    p.run().raise_for_status()

    left = _tables(pg, schema)
    assert dead not in left
    assert mine in left
    assert f"{STAGING_PREFIX}not_ours" in left  # not a name etl_nb writes: never touched
    assert "target" in left
