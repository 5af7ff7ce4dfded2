"""CSV -> join -> aggregate -> Parquet: etl_nb beside plain DuckDB and Polars lazy.

Each variant runs in a fresh process (so peak memory is its own), the
variants interleaved round by round so machine noise hits all of them alike.
Prints median seconds, peak RSS and the ratio of etl_nb to the faster peer.

    python bench/bench_pipeline.py [--rows 10000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"

QUERY = """
SELECT o.customer_id, r.region, sum(o.amount * r.rate) AS revenue, count(*) AS orders
FROM {orders} o JOIN {rates} r USING (currency)
GROUP BY ALL
"""


def make_data(rows: int) -> tuple[Path, Path]:
    """A ``rows``-row orders CSV and a small rates CSV, made once and kept."""
    import duckdb

    DATA.mkdir(exist_ok=True)
    orders, rates = DATA / f"orders_{rows}.csv", DATA / "rates.csv"
    if not orders.exists():
        print(f"generating {orders.name} ...", file=sys.stderr)
        duckdb.sql(
            f"""COPY (SELECT i AS id, (i * 7919) % 100000 AS customer_id,
                   round(((i * 31) % 10000) / 100.0, 2) AS amount,
                   ['EUR','USD','GBP','JPY','CHF','SEK','NOK','DKK'][(i % 8) + 1] AS currency
            FROM range({rows}) t(i)) TO '{orders}' (FORMAT csv, HEADER true)"""
        )
    if not rates.exists():
        rates.write_text(
            "currency,rate,region\nEUR,1.0,eu\nUSD,0.92,us\nGBP,1.17,uk\nJPY,0.0061,asia\n"
            "CHF,1.05,eu\nSEK,0.087,nordics\nNOK,0.085,nordics\nDKK,0.134,nordics\n"
        )
    return orders, rates


def run_etl_nb(orders: Path, rates: Path, out: Path) -> None:
    from etl_nb import Pipeline

    p = Pipeline("bench", base_dir=orders.parent, store=f"sqlite:///{out.parent / 'store.db'}")
    p.connect("data", ".")
    p.connect("out", str(out.parent))
    p.extract("orders", source="data", path=orders.name)
    p.extract("rates", source="data", path=rates.name)
    p.transform("revenue", sql=QUERY.format(orders="orders", rates="rates"))
    p.load("revenue", to="out", path=out.name, mode="replace")
    p.run().raise_for_status()


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


VARIANTS = {"etl_nb": run_etl_nb, "duckdb": run_duckdb, "polars": run_polars}


def child(variant: str, orders: str, rates: str) -> None:
    """Run one variant once in this process and print its time and peak memory as JSON."""
    import resource

    # Imports are paid once per process by any tool; time the work itself.
    import duckdb
    import polars  # noqa: F401

    import etl_nb  # noqa: F401

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "revenue.parquet"
        started = time.perf_counter()
        VARIANTS[variant](Path(orders), Path(rates), out)
        seconds = time.perf_counter() - started
        rows = duckdb.sql(f"SELECT count(*) FROM '{out}'").fetchall()[0][0]
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mib": peak_mib, "rows": rows}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    orders, rates = make_data(args.rows)
    results: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            out = subprocess.run(
                [sys.executable, __file__, "--child", variant, str(orders), str(rates)],
                check=True,
                capture_output=True,
                text=True,
            )
            results[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))
    rows = {v: r[0]["rows"] for v, r in results.items()}
    assert len(set(rows.values())) == 1, f"variants disagree on the output: {rows}"
    medians = {v: statistics.median(r["seconds"] for r in runs) for v, runs in results.items()}
    peaks = {v: max(r["peak_mib"] for r in runs) for v, runs in results.items()}
    best_peer = min(medians["duckdb"], medians["polars"])
    print(
        f"{args.rows:,} rows CSV -> join -> aggregate -> Parquet ({rows['etl_nb']:,} output rows), "
        f"median of {args.rounds} interleaved rounds"
    )
    print(f"{'variant':<10}{'seconds':>10}{'peak MiB':>10}{'vs best peer':>14}")
    for variant in VARIANTS:
        ratio = medians[variant] / best_peer
        print(f"{variant:<10}{medians[variant]:>10.3f}{peaks[variant]:>10.0f}{ratio:>13.2f}x")
    print(f"goal: etl_nb at most 1.15x the faster peer -> {medians['etl_nb'] / best_peer:.2f}x")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
    else:
        main()
