"""One notebook cell, three ways, in one process: %%etl transform, JupySQL's %%sql, plain DuckDB.

    .venv/bin/python bench/bench_cell.py [--rows 1000000] [--repeat 7]

All three use the same DuckDB connection (the notebook pipeline's session),
run through a real IPython shell with display on (outputs go to a
null publisher after being formatted, as a frontend would receive them).
Two results: a 1-row cell (an aggregate) and an N-row cell (a copy of the
table). Plain DuckDB's N-row baseline is what a preview cell must do at
least: materialise the result as a table, fetch a 10-row preview as Polars,
and count the rows.
Goals: 1-row %%etl <= JupySQL; N-row %%etl <= 1.3x plain DuckDB.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from typing import Any


def median_seconds(action: Callable[[], Any], repeat: int) -> float:
    action()  # warm up: caches, first-call imports
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="etl_nb_bench_")
    os.chdir(workdir)
    os.environ["ETL_NB_STORE_URL"] = f"sqlite:///{workdir}/runs.db"
    os.environ.setdefault("IPYTHONDIR", os.path.join(workdir, "ipython"))

    from IPython.testing.globalipapp import start_ipython

    shell = start_ipython()
    assert shell is not None

    def cell(source: str) -> None:
        with redirect_stdout(io.StringIO()):
            result = shell.run_cell(source)
        if not result.success:
            raise SystemExit(f"cell failed: {source!r}: {result.error_in_exec or result.error_before_exec}")

    cell("%load_ext etl_nb")
    cell(
        f"%%etl transform big\nSELECT range AS id, range % 1000 AS customer_id, "
        f"(range % 997) * 1.5 AS amount FROM range({args.rows})"
    )
    cell("import etl_nb\ncon = etl_nb.current().session.con")
    cell("%load_ext sql")
    cell("%config SqlMagic.displaylimit = 10")
    cell("%config SqlMagic.autopandas = False")
    cell("%sql con --alias etl")
    con = shell.user_ns["con"]

    one_sql = "SELECT count(*) AS n, sum(amount) AS total FROM big"
    all_sql = "SELECT * FROM big"

    def plain_one() -> None:
        con.execute("DROP TABLE IF EXISTS plain_one")
        con.execute(f"CREATE TABLE plain_one AS {one_sql}")
        con.sql("SELECT * FROM plain_one LIMIT 10").pl()
        con.execute("SELECT count(*) FROM plain_one").fetchall()

    def plain_all() -> None:
        con.execute("DROP TABLE IF EXISTS plain_all")
        con.execute(f"CREATE TABLE plain_all AS {all_sql}")
        con.sql("SELECT * FROM plain_all LIMIT 10").pl()
        con.execute("SELECT count(*) FROM plain_all").fetchall()

    results: dict[str, dict[str, float]] = {}
    for label, sql, plain in (("1 row", one_sql, plain_one), (f"{args.rows:,} rows", all_sql, plain_all)):
        results[label] = {
            "etl": median_seconds(lambda sql=sql: cell(f"%%etl transform result\n{sql}"), args.repeat),
            "jupysql": median_seconds(lambda sql=sql: cell(f"%%sql\n{sql}"), args.repeat),
            "duckdb": median_seconds(plain, args.repeat),
        }

    # The %%etl cell really materialised every row (not a lazy view).
    session = shell.user_ns["etl_nb"].current().session
    assert session.objects["result"] == "table", session.objects
    assert session.count("result") == args.rows

    print(f"median of {args.repeat} runs, one process, python {sys.version.split()[0]}")
    print(f"{'result':<18}{'%%etl':>10}{'%%sql':>10}{'duckdb':>10}{'etl/sql':>10}{'etl/duckdb':>12}")
    for label, r in results.items():
        print(
            f"{label:<18}{r['etl'] * 1000:>8.1f}ms{r['jupysql'] * 1000:>8.1f}ms{r['duckdb'] * 1000:>8.1f}ms"
            f"{r['etl'] / r['jupysql']:>10.2f}{r['etl'] / r['duckdb']:>12.2f}"
        )
    one, many = results["1 row"], results[f"{args.rows:,} rows"]
    print(f"goal 1-row %%etl <= %%sql: {'met' if one['etl'] <= one['jupysql'] else 'NOT met'}")
    print(f"goal N-row %%etl <= 1.3x duckdb: {'met' if many['etl'] <= 1.3 * many['duckdb'] else 'NOT met'}")


if __name__ == "__main__":
    main()
