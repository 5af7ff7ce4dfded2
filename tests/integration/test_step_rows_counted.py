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


def test_a_transform_fused_into_another_reports_its_own_rows_not_its_readers(tmp_path: Path) -> None:
    duckdb.sql(f"COPY (SELECT i AS id, i % 10 AS g FROM range(3000) t(i)) TO '{tmp_path}/e.csv' (HEADER)")
    p = Pipeline("chain", base_dir=tmp_path)
    p.connect("lake", ".")
    p.extract("e", source="lake", path="e.csv")
    p.transform("odd", sql="SELECT * FROM e WHERE id % 2 = 1")
    # The reader's own filter and limit must not leak into odd's count.
    p.transform("few", sql="SELECT * FROM odd WHERE g = 3 LIMIT 7")
    p.transform("groups", sql="SELECT g, count(*) AS n FROM few GROUP BY g")
    p.check("groups", [{"not_null": ["g"]}])
    p.load("few", to="lake", path="out/few.parquet")
    p.transform("evens", sql="SELECT * FROM e WHERE id % 2 = 0")
    p.transform("big_evens", sql="SELECT * FROM evens WHERE id > 2000")
    p.load("big_evens", to="lake", path="out/big_evens.csv")
    result = p.run().raise_for_status()
    rows = {name: step.rows for name, step in result.steps.items() if ":" not in name}
    assert rows == {"e": 3000, "odd": 1500, "few": 7, "groups": 1, "evens": 1500, "big_evens": 499}
