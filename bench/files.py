"""Files: orders CSV -> join a rates table -> aggregate -> Parquet.

etl_nb's ``Pipeline.run()`` (run store included) beside the same work as one
hand-written DuckDB query, one Polars lazy query and pandas. Every competitor
writes the same Parquet file; the rows written are compared.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.harness import Goal, timed

NAME = "files"
TITLE = "A pipeline on files"
DESCRIPTION = (
    "{rows:,} rows of CSV → join a rates table → aggregate → Parquet. etl_nb runs it through "
    "`Pipeline.run()` (run store included); the peers do the same work as one DuckDB query, one "
    "Polars lazy query (`scan_csv` … `sink_parquet`) and pandas (`read_csv`, `merge`, `groupby`, "
    "`to_parquet`). Each run is a fresh process, so the peak memory is its own."
)
COMPETITORS = {
    "etl_nb": "etl_nb `Pipeline.run()`",
    "duckdb": "DuckDB, one query",
    "polars": "Polars lazy",
    "pandas": "pandas",
}
BASELINE = "duckdb"
CASE = "CSV → join → aggregate → Parquet"
CASES = [CASE]
GOALS = [
    Goal("etl_nb at most 1.15× the faster of DuckDB and Polars", CASE, "etl_nb", 1.15, ("duckdb", "polars")),
    Goal("etl_nb's peak memory at most 1.2× DuckDB's", CASE, "etl_nb", 1.2, ("duckdb",), "peak_mib"),
]
MEASURES_MEMORY = True
ONE_PROCESS = False

QUERY = """
SELECT o.customer_id, r.region, sum(o.amount * r.rate) AS revenue, count(*) AS orders
FROM {orders} o JOIN {rates} r USING (currency)
GROUP BY ALL
"""
RATES = (
    "currency,rate,region\nEUR,1.0,eu\nUSD,0.92,us\nGBP,1.17,uk\nJPY,0.0061,asia\n"
    "CHF,1.05,eu\nSEK,0.087,nordics\nNOK,0.085,nordics\nDKK,0.134,nordics\n"
)


SIZES = {"small": {"rows": 100_000}, "full": {"rows": 5_000_000}}


@contextmanager
def prepare(size: str, workdir: Path) -> Iterator[dict[str, Any]]:
    """Write the orders and rates CSV files once for every competitor."""
    import duckdb

    rows = SIZES[size]["rows"]
    orders, rates = workdir / f"orders_{rows}.csv", workdir / "rates.csv"
    duckdb.sql(
        f"""COPY (SELECT i AS id, (i * 7919) % 100000 AS customer_id,
               round(((i * 31) % 10000) / 100.0, 2) AS amount,
               ['EUR','USD','GBP','JPY','CHF','SEK','NOK','DKK'][(i % 8) + 1] AS currency
        FROM range({rows}) t(i)) TO '{orders}' (FORMAT csv, HEADER true)"""
    )
    rates.write_text(RATES)
    yield {"orders": str(orders), "rates": str(rates), "rows": rows}


def run_etl_nb(orders: Path, rates: Path, out: Path) -> None:
    from etl_nb import Pipeline

    p = Pipeline("bench", base_dir=orders.parent, store=f"sqlite:///{out.parent / 'store.db'}")
    p.connect("data", str(orders.parent))
    p.connect("out", str(out.parent))
    p.extract("orders", source="data", path=orders.name)
    p.extract("rates", source="data", path=rates.name)
    p.transform("revenue", sql=QUERY.format(orders="orders", rates="rates"))
    p.load("revenue", to="out", path=out.name, mode="replace")
    p.run().raise_for_status()
    p.close()


def run_duckdb(orders: Path, rates: Path, out: Path) -> None:
    import duckdb

    query = QUERY.format(orders=f"read_csv('{orders}')", rates=f"read_csv('{rates}')")
    duckdb.connect().execute(f"COPY ({query}) TO '{out}' (FORMAT parquet)")


def run_polars(orders: Path, rates: Path, out: Path) -> None:
    import polars as pl

    (
        pl.scan_csv(orders)
        .join(pl.scan_csv(rates), on="currency")
        .group_by("customer_id", "region")
        .agg((pl.col("amount") * pl.col("rate")).sum().alias("revenue"), pl.len().alias("orders"))
        .sink_parquet(out)
    )


def run_pandas(orders: Path, rates: Path, out: Path) -> None:
    import pandas as pd

    frame = pd.read_csv(orders).merge(pd.read_csv(rates), on="currency")
    frame["revenue"] = frame["amount"] * frame["rate"]
    grouped = frame.groupby(["customer_id", "region"], as_index=False).agg(
        revenue=("revenue", "sum"), orders=("id", "size")
    )
    grouped.to_parquet(out, index=False)


RUNNERS = {"etl_nb": run_etl_nb, "duckdb": run_duckdb, "polars": run_polars, "pandas": run_pandas}
IMPORTS = {
    # `import etl_nb` loads no engine (it is lazy since issue 13): what a run needs is etl_nb.pipeline.
    "etl_nb": ("etl_nb", "etl_nb.pipeline"),
    "duckdb": ("duckdb",),
    "polars": ("polars",),
    "pandas": ("pandas", "pyarrow"),
}


def run(competitor: str, params: dict[str, Any]) -> dict[str, Any]:
    """In the child: one competitor once; seconds, and the rows it wrote (read back by pyarrow)."""
    import importlib

    # Imports are paid once per process by any tool: before the clock.
    for module in IMPORTS[competitor]:
        importlib.import_module(module)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "revenue.parquet"
        seconds = timed(lambda: RUNNERS[competitor](Path(params["orders"]), Path(params["rates"]), out))
        import pyarrow.parquet as pq

        rows = pq.read_metadata(out).num_rows
    return {"seconds": {CASE: seconds}, "extra": {"rows": rows}}
