"""The quickstart pipeline through the Python API: files in, files out, run recorded."""

from pathlib import Path

from etl_nb import Pipeline

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "notebooks" / "data"

p = Pipeline("quickstart", base_dir=DATA)
p.connect("lake", ".")
p.extract("orders", source="lake", path="orders.csv")
p.extract("rates", source="lake", path="fx/rates_*.csv")
p.extract("customers", source="lake", path="customers.ndjson")
p.transform(
    "revenue",
    sql="""
    WITH paid AS (SELECT * FROM orders WHERE status = 'paid' AND created_at >= {{ start_date }})
    SELECT c.name, c.country, round(sum(p.amount * r.rate), 2) AS revenue_eur
    FROM paid p
    JOIN rates r USING (currency)
    JOIN customers c USING (customer_id)
    GROUP BY ALL
    ORDER BY revenue_eur DESC
    """,
)
p.check(
    "revenue",
    [{"not_null": ["name", "revenue_eur"]}, {"unique": ["name"]}, {"expression": "revenue_eur >= 0"}],
)
p.load("revenue", to="lake", path="output/revenue.parquet", mode="replace")

result = p.run(params={"start_date": "2026-01-01"})
print(result)
print(p.table("revenue"))
print(f"wrote {DATA / 'output' / 'revenue.parquet'}; run recorded in {p.store.url}")
raise SystemExit(0 if result.status == "success" else 1)
