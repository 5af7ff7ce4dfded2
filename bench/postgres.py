"""PostgreSQL -> transform -> merge into PostgreSQL, three cases.

The source is a table of 11 types (int, bigint, numeric, float, text, bool,
date, timestamp, timestamptz, uuid, jsonb) in a database made for the run.
Cases, each into a target of its own:
- ``new table``: the target does not exist;
- ``rows changed``: the target holds every row with another ``score``
  (the competitor's own merge of the view ``src_old``, untimed), so the
  merge updates every row;
- ``10 rows changed``: the same with a 10-row source, the fixed cost of a
  small load. It runs first in each competitor's fresh process, so it pays
  what the first load in a new kernel pays (etl_nb's target is prepared by the
  hand-written COPY + MERGE, so its timed run is the process's first load).
Competitors: psycopg binary COPY out and in (the floor: bytes out and in,
nothing parsed; into a new table only), a hand-written COPY into a temp table
+ ``MERGE``, etl_nb ``Pipeline.run()``, pandas ``read_sql`` + ``to_sql`` (+ the
same ``MERGE`` when the target exists), dlt's ``sql_database`` source into its
``postgres`` destination with ``write_disposition="merge"``.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.harness import Goal

NAME = "postgres"
TITLE = "PostgreSQL → transform → merge into PostgreSQL"
DESCRIPTION = (
    "{rows:,} rows of 11 types (int, bigint, numeric, float, text, bool, date, timestamp, timestamptz, "
    "uuid, jsonb) on the local PostgreSQL, merged on `id` into a target of each case's own: a **new "
    "table** (no target yet), **rows changed** (the target holds every row with another `score`: "
    "every row is updated), and **10 rows changed** (the fixed cost of a small load, run first in each "
    "competitor's fresh process: it pays what a new kernel's first load pays; for etl_nb the imports "
    "of etl_nb, psycopg and DuckDB come before the clock, the PostgreSQL connector's inside it). The floor, "
    "psycopg binary `COPY` out and in, only applies to a new table. pandas runs on at most "
    "{pandas_rows:,} rows and its time is scaled to the full count (marked). dlt uses its fastest "
    "installed paths here: the `pyarrow` backend and `csv` (COPY) loader files. The server's own "
    "memory is not counted."
)
COMPETITORS = {
    "floor": "psycopg binary COPY out + in (the floor)",
    "copy_merge": "hand-written COPY into a temp table + `MERGE`",
    "etl_nb": "etl_nb `Pipeline.run()`, merge load",
    "pandas": "pandas `read_sql` + `to_sql`",
    "dlt": "dlt `sql_database` → `postgres`, merge",
}
BASELINE = "floor"
CASE_BASELINES = {"rows changed": "copy_merge", "10 rows changed": "copy_merge"}
NEW, CHANGED, SMALL = "new table", "rows changed", "10 rows changed"
CASES = [SMALL, NEW, CHANGED]  # in the order each child runs them: the small case first, fresh
GOALS = [
    Goal("a merge into a new table at most 1.3× the COPY floor", NEW, "etl_nb", 1.3, ("floor",)),
    Goal(
        "a merge of changed rows at most 1.2× hand-written COPY + MERGE",
        CHANGED,
        "etl_nb",
        1.2,
        ("copy_merge",),
    ),
    Goal("a 10-row merge load step at most 50 ms", f"{SMALL} (load step)", "etl_nb", 0.050),
]
MEASURES_MEMORY = True
ONE_PROCESS = False
SIZES = {"small": {"rows": 5_000, "pandas_rows": 5_000}, "full": {"rows": 1_000_000, "pandas_rows": 50_000}}

COLUMNS = """
SELECT i AS id, (i::bigint * 7919) % 100000 AS customer_id,
       round(((i::bigint * 31) % 10000) / 100.0, 2)::numeric(12, 2) AS amount,
       (i * 1.5)::float8 AS score, 'name é ✓ ' || i AS label, i % 2 = 0 AS flag,
       date '2020-01-01' + (i % 1000)::int AS day,
       timestamp '2020-01-01' + i * interval '1 second' AS at,
       timestamptz '2020-01-01 00:00+00' + i * interval '1 second' AS at_tz,
       md5(i::text)::uuid AS uid, jsonb_build_object('k', i) AS doc
FROM generate_series(1, {rows}) i
"""
NAMES = ["id", "customer_id", "amount", "score", "label", "flag", "day", "at", "at_tz", "uid", "doc"]
OLD = ", ".join("score - 1 AS score" if c == "score" else c for c in NAMES)
# The source each case reads, and the older version of it a target starts from.
SOURCES = {NEW: ("src", None), CHANGED: ("src", "src_old"), SMALL: ("src10", "src10_old")}


def admin_url() -> str:
    return os.environ.get("ETL_NB_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def prepare(size: str, workdir: Path) -> Iterator[dict[str, Any]]:
    """A database of its own with ``src`` (and its views), dropped at the end."""
    import psycopg

    rows = SIZES[size]["rows"]
    name = f"etl_nb_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _as_url(admin_url(), name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE src AS " + COLUMNS.format(rows=rows))
            conn.execute("ALTER TABLE src ADD PRIMARY KEY (id)")
            conn.execute(f"CREATE VIEW src_old AS SELECT {OLD} FROM src")
            conn.execute("CREATE VIEW src10 AS SELECT * FROM src WHERE id <= 10")
            conn.execute(f"CREATE VIEW src10_old AS SELECT {OLD} FROM src10")
            conn.execute("VACUUM ANALYZE src")
            version = conn.execute("SHOW server_version").fetchone()
        yield {
            "url": url,
            "rows": rows,
            "pandas_rows": SIZES[size]["pandas_rows"],
            "server": f"PostgreSQL {version[0] if version else '?'}",
        }
    finally:
        with psycopg.connect(admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _as_url(url: str, database: str) -> str:
    import sqlalchemy as sa

    return sa.engine.make_url(url).set(database=database).render_as_string(hide_password=False)


def _limited(source: str, rows: int) -> str:
    return f"SELECT * FROM {source} ORDER BY id LIMIT {rows}"


# --- the competitors: each merges ``source`` (at most ``rows`` rows) into ``target`` -------------


def floor(url: str, source: str, target: str, rows: int) -> None:
    import psycopg

    buffer = io.BytesIO()
    with psycopg.connect(url) as conn:
        with conn.cursor().copy(f"COPY ({_limited(source, rows)}) TO STDOUT (FORMAT binary)") as copy:
            for chunk in copy:
                buffer.write(chunk)
        conn.execute(f"CREATE TABLE {target} (LIKE src)")
        with conn.cursor().copy(f"COPY {target} FROM STDIN (FORMAT binary)") as copy:
            copy.write(buffer.getbuffer())


def merge_sql(target: str, staging: str, columns: list[str]) -> str:
    """``MERGE`` on ``id``: update the rows that differ, insert the new ones."""
    others = [c for c in columns if c != "id"]
    differs = " OR ".join(f"t.{c} IS DISTINCT FROM s.{c}" for c in others)
    updates = ", ".join(f"{c} = s.{c}" for c in others)
    return (
        f"MERGE INTO {target} t USING {staging} s ON t.id = s.id "
        f"WHEN MATCHED AND ({differs}) THEN UPDATE SET {updates} "
        f"WHEN NOT MATCHED THEN INSERT ({', '.join(columns)}) VALUES ({', '.join('s.' + c for c in columns)})"
    )


def copy_merge(url: str, source: str, target: str, rows: int) -> None:
    import psycopg

    buffer = io.BytesIO()
    with psycopg.connect(url) as conn:
        with conn.cursor().copy(f"COPY ({_limited(source, rows)}) TO STDOUT (FORMAT binary)") as copy:
            for chunk in copy:
                buffer.write(chunk)
        conn.execute(f"CREATE TABLE IF NOT EXISTS {target} (LIKE src INCLUDING ALL)")
        conn.execute(f"CREATE TEMP TABLE staging (LIKE {target}) ON COMMIT DROP")
        with conn.cursor().copy("COPY staging FROM STDIN (FORMAT binary)") as copy:
            copy.write(buffer.getbuffer())
        conn.execute(merge_sql(target, "staging", NAMES))


def etl_nb_merge(url: str, source: str, target: str, rows: int) -> dict[str, float]:
    from etl_nb import Pipeline

    folder = tempfile.mkdtemp()
    p = Pipeline("bench_pg", base_dir=folder, store=f"sqlite:///{folder}/store.db")
    p.connect("pg", url)
    p.extract("src_rows", source="pg", query=_limited(source, rows))
    p.transform("shaped", sql="SELECT * FROM src_rows")
    p.load("shaped", to="pg", table=target, mode="merge", key="id")
    started = time.perf_counter()
    result = p.run().raise_for_status()
    seconds = time.perf_counter() - started
    p.close()
    load = sum(s.seconds for s in result.steps.values() if s.kind == "load")
    return {"seconds": seconds, "load step": load}


def pandas_merge(url: str, source: str, target: str, rows: int) -> None:
    import pandas as pd
    import sqlalchemy as sa

    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    # pandas cannot write the dicts it reads from jsonb: the JSON travels as text.
    columns = ", ".join("doc::text AS doc" if c == "doc" else c for c in NAMES)
    frame = pd.read_sql(f"SELECT {columns} FROM ({_limited(source, rows)}) s", engine)
    with engine.begin() as conn:
        exists = sa.inspect(conn).has_table(target)
        staging = f"{target}_staging"
        frame.to_sql(
            staging if exists else target,
            conn,
            if_exists="replace",
            index=False,
            method="multi",
            chunksize=5000,
        )
        if exists:
            conn.execute(sa.text(merge_sql(target, staging, NAMES)))
            conn.execute(sa.text(f"DROP TABLE {staging}"))
    engine.dispose()


def dlt_merge(url: str, source: str, target: str, rows: int) -> None:
    import dlt
    from dlt.sources.sql_database import sql_table

    # dlt's postgres destination insists on a password; trust auth ignores this one.
    credentials = url.replace("postgres@", "postgres:unused@", 1)
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{target}",
        destination=dlt.destinations.postgres(credentials=credentials),
        dataset_name=target,
        pipelines_dir=os.environ.get("DLT_DATA_DIR", tempfile.mkdtemp()),
    )
    # The source is a whole table or view (sql_table reads tables, not queries): ``rows`` is its size.
    resource = sql_table(credentials=url, table=source, backend="pyarrow", chunk_size=50_000)
    resource.apply_hints(table_name="target", primary_key="id", write_disposition="merge")
    pipeline.run(resource, loader_file_format="csv").raise_on_failed_jobs()


RUNNERS: dict[str, Callable[..., Any]] = {
    "floor": floor,
    "copy_merge": copy_merge,
    "etl_nb": etl_nb_merge,
    "pandas": pandas_merge,
    "dlt": dlt_merge,
}
IMPORTS = {
    "floor": ("psycopg",),
    "copy_merge": ("psycopg",),
    # What the extract pays anyway; the PostgreSQL connector (and ADBC) load inside the run.
    "etl_nb": ("etl_nb", "psycopg", "duckdb"),
    "pandas": ("pandas", "sqlalchemy", "psycopg"),
    "dlt": ("dlt", "dlt.sources.sql_database"),
}


def run(competitor: str, params: dict[str, Any]) -> dict[str, Any]:
    """In the child: this competitor over every case it takes part in."""
    import importlib

    for module in IMPORTS[competitor]:
        importlib.import_module(module)
    url, runner = params["url"], RUNNERS[competitor]
    rows = params["pandas_rows"] if competitor == "pandas" else params["rows"]
    seconds: dict[str, float] = {}
    extra: dict[str, Any] = {}
    for case in CASES:
        if competitor == "floor" and case != NEW:
            continue
        source, old = SOURCES[case]
        target = f"t_{competitor}_{case.replace(' ', '_').replace('10', 'ten')}_{uuid.uuid4().hex[:6]}"
        case_rows = min(rows, 10) if case == SMALL else rows
        if old:  # the target starts from the older rows, merged by the competitor itself
            # (etl_nb's small target by hand: its timed run must be the process's first load)
            prepare_with = copy_merge if competitor == "etl_nb" and case == SMALL else runner
            prepare_with(url, old, target, case_rows)
        started = time.perf_counter()
        answer = runner(url, source, target, case_rows)
        seconds[case] = time.perf_counter() - started
        if isinstance(answer, dict):  # etl_nb: its own clock around run(), and the load step's
            seconds[case] = answer["seconds"]
            seconds[f"{case} (load step)"] = answer["load step"]
        check_target(url, competitor, target, source, case_rows)
        drop_target(url, competitor, target)
        if competitor == "pandas" and case != SMALL and rows < params["rows"]:
            extra["scaled"] = {"from": rows, "to": params["rows"]}
            seconds[case] *= params["rows"] / rows
    return {"seconds": seconds, "extra": extra}


def check_target(url: str, competitor: str, target: str, source: str, rows: int) -> None:
    """Stop the run unless the target holds the source's rows with the source's scores."""
    import psycopg

    table = f"{target}.target" if competitor == "dlt" else target  # dlt: dataset (schema) . table
    summary = "SELECT count(*), round(sum(score::numeric), 2) FROM {}"
    with psycopg.connect(url) as conn:
        got = conn.execute(summary.format(table)).fetchone()
        wanted = conn.execute(summary.format(f"({_limited(source, rows)}) s")).fetchone()
    if got != wanted:
        raise SystemExit(f"{competitor} left {target} with (rows, sum of score) {got}, not {wanted}")


def drop_target(url: str, competitor: str, target: str) -> None:
    """Drop a checked target: six rounds of five competitors' million-row tables would fill a disk."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        if competitor == "dlt":
            conn.execute(f"DROP SCHEMA IF EXISTS {target} CASCADE")
            conn.execute(f"DROP SCHEMA IF EXISTS {target}_staging CASCADE")
        else:
            conn.execute(f"DROP TABLE IF EXISTS {target}")
