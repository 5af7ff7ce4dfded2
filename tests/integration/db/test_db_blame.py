"""Errors name the step that holds the mistake: a load's own refused connection, a CSV value."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from etl_nb import Pipeline


@pytest.fixture
def refused_url(pg: sa.Engine, pg_url: str) -> Iterator[str]:
    """A PostgreSQL role that may open no connection at all ("too many connections")."""
    role = f"r_{uuid.uuid4().hex[:8]}"
    with pg.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 0"))
    yield make_url(pg_url).set(username=role).render_as_string(hide_password=False)
    with pg.connect() as conn:
        conn.execute(sa.text(f"DROP ROLE IF EXISTS {role}"))


def test_a_load_whose_connection_is_refused_says_so(
    tmp_path: Path, refused_url: str, make_pipeline: Callable[[str], Pipeline]
) -> None:
    (tmp_path / "t.csv").write_text("id,name\n1,a\n2,b\n")
    p = make_pipeline("refused")
    p.connect("lake", ".")
    p.connect("pg", refused_url)
    p.extract("t", source="lake", path="t.csv")
    p.load("t", to="pg", table="public.t_refused")
    result = p.run()
    assert result.status == "failed"
    assert result.error is not None
    assert "too many connections" in result.error
    assert "SQL error in extract" not in result.error
    assert result.steps["load:t:pg:public.t_refused"].status == "failed"
    assert result.steps["t"].status == "success"


@pytest.mark.parametrize("through", ["direct", "transform"])
def test_a_load_whose_connection_is_refused_says_so_after_a_database_extract(
    pg: sa.Engine, pg_url: str, refused_url: str, make_pipeline: Callable[[str], Pipeline], through: str
) -> None:
    table = f"src_{uuid.uuid4().hex[:8]}"
    with pg.connect() as conn:
        conn.execute(sa.text(f"CREATE TABLE public.{table} AS SELECT 1 AS id"))
    p = make_pipeline("refused_db")
    p.connect("src", pg_url)
    p.connect("pg", refused_url)
    p.extract("t", source="src", query=f"SELECT id FROM public.{table}")
    step = "t"
    if through == "transform":
        p.transform("u", sql="SELECT id + 1 AS id FROM t")
        step = "u"
    p.load(step, to="pg", table="public.t_refused")
    result = p.run()
    assert result.status == "failed"
    assert result.error is not None
    assert "too many connections" in result.error, result.error
    assert "SQL error in" not in result.error
    assert result.steps[f"load:{step}:pg:public.t_refused"].status == "failed"


def _tables(pg: sa.Engine, schema: str) -> list[str]:
    with pg.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"), {"s": schema}
        )
        return [r[0] for r in rows]


def test_a_table_name_past_63_bytes_is_refused_before_anything_is_written(
    tmp_path: Path, pg: sa.Engine, pg_url: str, schema: str, make_pipeline: Callable[[str], Pipeline]
) -> None:
    (tmp_path / "t.csv").write_text("id\n1\n")
    long_name = "daily_revenue_by_customer_and_region_and_currency_for_the_board_v2"  # 66 bytes
    p = make_pipeline("long_names")
    p.connect("lake", ".")
    p.connect("pg", pg_url)
    p.extract("t", source="lake", path="t.csv")
    p.load("t", to="pg", table=f"{schema}.{long_name}")
    for _ in range(2):  # the second run used to fail with "already exists"
        result = p.run()
        assert result.status == "failed"
        assert result.error is not None
        assert f"'{long_name}'" in result.error
        assert "66 bytes" in result.error
        assert "PostgreSQL keeps only the first 63" in result.error
    assert _tables(pg, schema) == []


def test_a_column_name_past_63_bytes_is_refused_before_anything_is_written(
    tmp_path: Path, pg: sa.Engine, pg_url: str, schema: str, make_pipeline: Callable[[str], Pipeline]
) -> None:
    column = "x" * 64
    p = make_pipeline("long_columns")
    p.connect("pg", pg_url)
    p.transform("t", sql=f"SELECT 1 AS {column}")
    p.load("t", to="pg", table=f"{schema}.t")
    result = p.run()
    assert result.status == "failed"
    assert result.error is not None
    assert f"column '{column}' is 64 bytes long" in result.error
    assert _tables(pg, schema) == []
