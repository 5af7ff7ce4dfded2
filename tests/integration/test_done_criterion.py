"""Issue #2's done criterion: a real pipeline through the Python API equals plain DuckDB."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl
import pytest

from etl_nb import Pipeline
from etl_nb.store import RunStore

REVENUE_SQL = """
WITH paid AS (
    SELECT * FROM orders WHERE status = 'paid' AND created_at >= {start}
)
SELECT customer_id, c.country, round(sum(p.amount * r.rate), 2) AS revenue_eur, count(*) AS orders
FROM paid p
JOIN rates r USING (currency)
JOIN customers c USING (customer_id)
GROUP BY ALL
"""


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    """Three sources in three formats: orders (CSV), rates (Parquet), customers (NDJSON)."""
    folder = tmp_path / "lake"
    (folder / "fx").mkdir(parents=True)
    currencies = ["EUR", "USD", "GBP"]
    orders = pl.DataFrame(
        {
            "id": list(range(1, 301)),
            "customer_id": [i % 17 for i in range(300)],
            "amount": [round(5 + (i * 7.3) % 95, 2) for i in range(300)],
            "currency": [currencies[i % 3] for i in range(300)],
            "status": ["paid" if i % 4 else "refunded" for i in range(300)],
            "created_at": [f"2026-0{1 + i % 3}-{1 + i % 28:02d}" for i in range(300)],
        }
    )
    orders.write_csv(folder / "orders.csv")
    pl.DataFrame({"currency": currencies, "rate": [1.0, 0.92, 1.17]}).write_parquet(
        folder / "fx" / "rates.parquet"
    )
    with (folder / "customers.ndjson").open("w") as out:
        for i in range(17):
            out.write(json.dumps({"customer_id": i, "country": ["FR", "DE", "FI"][i % 3]}) + "\n")
    return folder


def test_three_sources_sql_and_polars_checks_and_a_parquet_load_equal_plain_duckdb(lake: Path) -> None:
    p = Pipeline("done_criterion", base_dir=lake)
    p.connect("lake", ".")
    p.extract("orders", source="lake", path="orders.csv")
    p.extract("rates", source="lake", path="fx/*.parquet")
    p.extract("customers", source="lake", path="customers.ndjson")
    p.transform("revenue", sql=REVENUE_SQL.format(start="{{ start_date }}"))
    p.transform(
        "ranked",
        python=(
            "ranked = revenue.with_columns(\n"
            "    rank=pl.col('revenue_eur').rank('ordinal', descending=True).over('country')\n"
            ")\n"
            "ranked.filter(pl.col('rank') <= 3).sort('country', 'rank')\n"
        ),
    )
    p.check(
        "revenue",
        [
            {"not_null": ["customer_id", "revenue_eur"]},
            {"unique": ["customer_id"]},
            {"expression": "revenue_eur >= 0"},
            {"row_count": {"min": 1}},
        ],
    )
    p.check("ranked", [{"accepted_values": {"country": ["FR", "DE", "FI"]}}])
    p.load("ranked", to="lake", path="out/top_customers.parquet", mode="replace")

    result = p.run(params={"start_date": "2026-02-01"})

    assert result.status == "success", result.error
    order = list(result.steps)
    load = "load:ranked:lake:out/top_customers.parquet"
    assert sorted(order) == sorted(
        ["orders", "rates", "customers", "revenue", "check:revenue", "ranked", "check:ranked", load]
    )
    assert order.index("revenue") < order.index("check:revenue")
    assert order.index("revenue") < order.index("ranked") < order.index("check:ranked") < order.index(load)
    assert all(s.status == "success" for s in result.steps.values())

    # The same pipeline written by hand in plain DuckDB and Polars.
    plain = duckdb.connect()
    plain.execute(f"CREATE VIEW orders AS SELECT * FROM read_csv('{lake}/orders.csv')")
    plain.execute(f"CREATE VIEW rates AS SELECT * FROM read_parquet('{lake}/fx/*.parquet')")
    plain.execute(f"CREATE VIEW customers AS SELECT * FROM read_json('{lake}/customers.ndjson')")
    revenue = plain.sql(REVENUE_SQL.format(start="'2026-02-01'")).pl()
    expected = (
        revenue.with_columns(rank=pl.col("revenue_eur").rank("ordinal", descending=True).over("country"))
        .filter(pl.col("rank") <= 3)
        .sort("country", "rank")
    )

    written = pl.read_parquet(lake / "out" / "top_customers.parquet")
    assert written.height == 9
    assert written.sort("country", "rank").equals(expected)
    assert p.table("ranked").equals(expected)
    assert result.rows == 9
    assert sorted(f.name for f in (lake / "out").iterdir()) == ["top_customers.parquet"]

    record = RunStore().get_run(result.run_id)
    assert record is not None
    assert (record.status, record.params, record.rows) == ("success", {"start_date": "2026-02-01"}, 9)
    assert [s.step for s in record.steps] == list(result.steps)
