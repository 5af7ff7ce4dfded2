"""Streamed database extracts report their rows: the batches that passed are counted."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from etl_nb import Pipeline


def test_a_streamed_extract_and_its_fused_transform_report_their_rows(
    pg: sa.Engine, pg_url: str, schema: str, make_pipeline: Callable[[str], Pipeline]
) -> None:
    with pg.connect() as conn:
        conn.execute(sa.text(f"CREATE TABLE {schema}.src AS SELECT i AS id FROM generate_series(1, 1000) i"))
    p = make_pipeline("streamed")
    p.connect("pg", pg_url)
    p.extract("src", source="pg", query=f"SELECT id FROM {schema}.src")
    p.transform("even", sql="SELECT id FROM src WHERE id % 2 = 0")
    p.load("even", to="pg", table=f"{schema}.even")
    result = p.run().raise_for_status()
    assert result.steps["src"].rows == 1000
    assert result.steps["even"].rows == 500
    assert result.steps[f"load:even:pg:{schema}.even"].rows == 500
