"""Every step reports its rows in a batch run, also the ones DuckDB runs inside a later statement."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from etl_nb import Pipeline
from etl_nb.store import RunStore


def test_a_fused_pipeline_reports_the_rows_plain_duckdb_counts(tmp_path: Path) -> None:
    duckdb.sql(
        f"COPY (SELECT i AS id, i % 3 AS cur, i * 1.5 AS amount FROM range(5000) t(i)) "
        f"TO '{tmp_path}/orders.csv' (HEADER)"
    )
    pl.DataFrame({"cur": [0, 1], "rate": [1.0, 0.5]}).write_parquet(tmp_path / "rates.parquet")
    p = Pipeline("fused", base_dir=tmp_path)
    p.connect("lake", ".")
    p.extract("orders", source="lake", path="orders.csv")
    p.extract("rates", source="lake", path="rates.parquet")
    p.transform("revenue", sql="SELECT id, amount * rate AS eur FROM orders JOIN rates USING (cur)")
    p.load("revenue", to="lake", path="out/revenue.parquet")
    result = p.run().raise_for_status()

    expected = {
        "orders": duckdb.sql(f"SELECT count(*) FROM '{tmp_path}/orders.csv'").fetchall()[0][0],
        "rates": 2,
        "revenue": duckdb.sql(
            f"SELECT count(*) FROM '{tmp_path}/orders.csv' JOIN '{tmp_path}/rates.parquet' USING (cur)"
        ).fetchall()[0][0],
    }
    assert {name: result.steps[name].rows for name in expected} == expected
    (record,) = RunStore().list_runs("fused")
    stored = {s.step: s.rows for s in RunStore().get_run(record.id).steps}  # type: ignore[union-attr]
    assert {name: stored[name] for name in expected} == expected
