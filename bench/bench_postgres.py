"""PostgreSQL -> DuckDB -> merge into PostgreSQL: etl_nb beside pandas and plain COPY.

One run, three variants, each in a fresh process (so peak memory is its own); floor and
etl_nb run ``--repeat`` times, interleaved, and the table shows medians with the range:
- ``floor``: psycopg ``COPY (SELECT ...) TO STDOUT (FORMAT binary)`` into memory,
  then ``COPY target FROM STDIN (FORMAT binary)``: bytes out and in, nothing parsed;
- ``etl_nb``: ``Pipeline.run()`` with an extract, a DuckDB transform and a merge load
  into a new table, then again into the now full table twice: with the same rows
  (nothing to update) and with every row's ``score`` changed (every row updated);
- ``pandas``: ``read_sql`` + ``to_sql(method="multi")`` (on ``--pandas-rows`` rows and
  scaled linearly when that is less than ``--rows``, as the table says).

    python bench/bench_postgres.py [--rows 1000000] [--pandas-rows 200000] [--repeat 5]
        [--url postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid

import sqlalchemy as sa

COLUMNS = """
SELECT i AS id, (i::bigint * 7919) % 100000 AS customer_id,
       round(((i::bigint * 31) % 10000) / 100.0, 2)::numeric(12, 2) AS amount,
       i * 1.5 AS score, 'name é ✓ ' || i AS label, i % 2 = 0 AS flag,
       date '2020-01-01' + (i % 1000)::int AS day,
       timestamp '2020-01-01' + i * interval '1 second' AS at,
       timestamptz '2020-01-01 00:00+00' + i * interval '1 second' AS at_tz,
       md5(i::text)::uuid AS uid, jsonb_build_object('k', i) AS doc
FROM generate_series(1, {rows}) i
"""


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(
        url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )


def variant_floor(url: str, rows: int) -> dict[str, float]:
    import io

    import psycopg

    started = time.perf_counter()
    buffer = io.BytesIO()
    with psycopg.connect(url) as conn:
        with conn.cursor().copy(f"COPY (SELECT * FROM src LIMIT {rows}) TO STDOUT (FORMAT binary)") as copy:
            for chunk in copy:
                buffer.write(chunk)
        conn.execute("DROP TABLE IF EXISTS dst_floor")
        conn.execute("CREATE TABLE dst_floor (LIKE src)")
        with conn.cursor().copy("COPY dst_floor FROM STDIN (FORMAT binary)") as copy:
            copy.write(buffer.getbuffer())
    return {"seconds": time.perf_counter() - started, "peak_mb": _peak_mb()}


def variant_etl_nb(url: str, rows: int) -> dict[str, float]:
    import tempfile

    from etl_nb import Pipeline
    from etl_nb.connectors import postgres  # noqa: F401  imported before the clock, as psycopg is for the floor

    folder = tempfile.mkdtemp()
    with _engine(url).connect() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS dst_etl"))
    p = Pipeline("bench_pg", base_dir=folder, store=f"sqlite:///{folder}/store.db")
    p.connect("pg", url)
    p.extract("src_rows", source="pg", query=f"SELECT * FROM src LIMIT {rows}")
    p.transform("shaped", sql="SELECT * FROM src_rows")
    p.load("shaped", to="pg", table="dst_etl", mode="merge", key="id")
    started = time.perf_counter()
    first = p.run().raise_for_status()
    fresh = time.perf_counter() - started
    p.reset()
    started = time.perf_counter()
    p.run().raise_for_status()
    same = time.perf_counter() - started
    # The same pipeline with every row's score changed: the merge updates every row.
    p.reset()
    p.extract(
        "src_rows",
        source="pg",
        query="SELECT id, customer_id, amount, score + 1 AS score, label, flag, day, at, at_tz, uid, doc "
        f"FROM src LIMIT {rows}",
    )
    started = time.perf_counter()
    p.run().raise_for_status()
    changed = time.perf_counter() - started
    steps = {k: round(v.seconds, 2) for k, v in first.steps.items()}
    print(f"  etl_nb steps (first run): {steps}", file=sys.stderr)
    return {"seconds": fresh, "same": same, "changed": changed, "peak_mb": _peak_mb()}


def variant_pandas(url: str, rows: int) -> dict[str, float]:
    import pandas as pd

    engine = _engine(url)
    started = time.perf_counter()
    # pandas cannot write the dicts it reads from jsonb: the JSON travels as text here.
    columns = "id, customer_id, amount, score, label, flag, day, at, at_tz, uid, doc::text AS doc"
    query = f"SELECT {columns} FROM src LIMIT {rows}"
    frame = pd.read_sql(query, engine)
    frame.to_sql("dst_pandas", engine, if_exists="replace", index=False, method="multi", chunksize=5000)
    return {"seconds": time.perf_counter() - started, "peak_mb": _peak_mb()}


VARIANTS = {"floor": variant_floor, "etl_nb": variant_etl_nb, "pandas": variant_pandas}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pandas-rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5, help="runs of floor and etl_nb (medians)")
    parser.add_argument("--skip-pandas", action="store_true", help="leave pandas out (it takes minutes)")
    parser.add_argument(
        "--url", default=os.environ.get("ETL_NB_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.variant:  # a child process: run one variant, print its numbers
        rows = args.pandas_rows if args.variant == "pandas" else args.rows
        print(json.dumps(VARIANTS[args.variant](args.database, rows)))
        return

    admin = _engine(args.url)
    name = f"etl_nb_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    database = sa.engine.make_url(args.url).set(database=name).render_as_string(hide_password=False)
    try:
        print(f"making {args.rows:,} rows in {name} ...", file=sys.stderr)
        with _engine(database).connect() as conn:
            conn.execute(sa.text("CREATE TABLE src AS " + COLUMNS.format(rows=args.rows)))
            conn.execute(sa.text("ALTER TABLE src ADD PRIMARY KEY (id)"))
            conn.execute(sa.text("VACUUM ANALYZE src"))
        runs: dict[str, list[dict[str, float]]] = {}
        order = ["floor", "etl_nb"] * max(1, args.repeat) + ([] if args.skip_pandas else ["pandas"])
        for variant in order:
            print(f"running {variant} ...", file=sys.stderr)
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--variant",
                    variant,
                    "--database",
                    database,
                    "--rows",
                    str(args.rows),
                    "--pandas-rows",
                    str(args.pandas_rows),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            sys.stderr.write(out.stderr)
            runs.setdefault(variant, []).append(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def median(variant: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[variant])

    def spread(variant: str, key: str) -> str:
        values = [r[key] for r in runs[variant]]
        return f"{min(values):.2f}-{max(values):.2f}" if len(values) > 1 else ""

    scale = args.rows / args.pandas_rows
    pandas_seconds = runs["pandas"][0]["seconds"] * scale if "pandas" in runs else float("nan")
    floor = median("floor", "seconds")
    etl = median("etl_nb", "seconds")
    print(
        f"\n{args.rows:,} rows, 11 columns (int, bigint, numeric, float, text, bool, date, timestamp, "
        "timestamptz, uuid, jsonb)\n"
    )
    print(
        f"{'variant (median of ' + str(len(runs['floor'])) + ')':<44} {'seconds':>9} {'range':>11} "
        f"{'x floor':>8} {'peak MB':>8}"
    )
    rows_out = [
        (
            "psycopg binary COPY out + in (floor)",
            floor,
            spread("floor", "seconds"),
            median("floor", "peak_mb"),
        ),
        (
            "etl_nb Pipeline.run(), merge into new table",
            etl,
            spread("etl_nb", "seconds"),
            median("etl_nb", "peak_mb"),
        ),
        (
            "etl_nb again, same rows (nothing updated)",
            median("etl_nb", "same"),
            spread("etl_nb", "same"),
            median("etl_nb", "peak_mb"),
        ),
        (
            "etl_nb again, every row changed and updated",
            median("etl_nb", "changed"),
            spread("etl_nb", "changed"),
            median("etl_nb", "peak_mb"),
        ),
    ]
    if "pandas" in runs:
        rows_out.append(
            (
                f"pandas read_sql + to_sql{' (scaled)' if scale != 1 else ''}",
                pandas_seconds,
                "",
                runs["pandas"][0]["peak_mb"],
            )
        )
    for label, seconds, between, peak in rows_out:
        print(f"{label:<44} {seconds:9.2f} {between:>11} {seconds / floor:8.2f} {peak:8.0f}")
    print(
        f"\netl_nb / floor = {etl / floor:.2f} (goal <= 1.5); "
        f"pandas / etl_nb = {pandas_seconds / etl:.1f} (goal >= 5)"
    )
    if scale != 1 and "pandas" in runs:
        print(
            f"pandas ran on {args.pandas_rows:,} rows ({runs['pandas'][0]['seconds']:.2f} s), "
            f"scaled x{scale:g}; "
            "its peak memory is for those rows."
        )


if __name__ == "__main__":
    main()
