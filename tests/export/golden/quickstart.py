"""The quickstart pipeline, exported from quickstart.ipynb by `etl-nb export`.

Run it with plain Python; the notebook's parameters are command-line options:

    python quickstart.py --start-date 2026-01-01 --data-dir data
    python quickstart.py --help
"""

import argparse
from pathlib import Path

import polars as pl

from etl_nb import Pipeline

# # Quickstart: a notebook that is a pipeline
#
# Orders, exchange rates and customers from files in `data/`, revenue per customer in euros, checked, and
# written to `data/output/revenue.parquet`. Each `%%etl` cell runs its step at once and shows a preview; `%etl
# run` reruns the whole pipeline and records the run.
#
# Run it on a schedule with papermill: `papermill quickstart.ipynb out.ipynb --cwd notebooks -p start_date
# 2026-01-10`.
p = Pipeline("quickstart", base_dir=Path(__file__).parent)

# Parameters (papermill injects new values after this cell, which is tagged `parameters`).
start_date = "2026-01-01"
data_dir = "data"

# The parameters above are the defaults; options on the command line override them.
parser = argparse.ArgumentParser(description="Run the quickstart pipeline.")
parser.add_argument("--start-date", default=start_date)
parser.add_argument("--data-dir", default=data_dir)
args = parser.parse_args()
start_date = args.start_date
data_dir = args.data_dir

# A folder of files is a connection; `{data_dir}` is expanded from the notebook, as one argument.
p.connect("lake", data_dir)

p.extract("orders", source="lake", path="orders.csv")

p.extract("rates", source="lake", path="fx/rates_*.csv")

p.extract("customers", source="lake", path="customers.ndjson")

# A SQL transform names earlier steps as tables. `{{ start_date }}` is a bound query parameter, never spliced
# text.
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


# A Python transform gets earlier steps as Polars DataFrames; its last expression is the result.
def revenue_share(revenue):
    return revenue.with_columns(share=(pl.col("revenue_eur") / pl.col("revenue_eur").sum()).round(3))


p.transform("revenue_share", python=revenue_share)

p.check(
    "revenue",
    [{"not_null": ["name", "revenue_eur"]}, {"unique": ["name"]}, {"expression": "revenue_eur >= 0"}],
)

p.load("revenue", to="lake", path="output/revenue.parquet")

# Rerun everything in DAG order; the run is recorded in the run store (`%etl runs`).
result = p.run(params={"start_date": start_date})
result.raise_for_status()
print(result)

# NBVAL_CHECK_OUTPUT
print(p.dag().mermaid())

# The full output of any step, as a Polars DataFrame:
# NBVAL_CHECK_OUTPUT
p.table("revenue_share")
