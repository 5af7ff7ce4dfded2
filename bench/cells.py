"""Cells: one notebook cell three ways, in one IPython shell on one DuckDB connection.

A ``%%etl transform`` cell beside JupySQL's ``%%sql`` and beside plain DuckDB,
all on the connection of the notebook pipeline's session, through a real
IPython shell with display on. Plain DuckDB does what a preview cell must do
at least: materialise the result as a table, fetch a 10-row preview, count.
Everything runs in one process (a kernel is one process), the competitors
interleaved round by round there.
"""

from __future__ import annotations

import functools
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

from bench.harness import Goal, rotated, timed

NAME = "cells"
TITLE = "A `%%etl transform` cell"
DESCRIPTION = (
    "One IPython shell, one DuckDB connection (the notebook pipeline's session): a `%%etl transform` "
    "cell beside JupySQL's `%%sql` and beside plain DuckDB (materialise as a table, 10-row preview, "
    "count), on a 1-row result (an aggregate) and on a {rows:,}-row result (a copy of the table). "
    "Each round times every competitor once per case, {rounds} rounds after one warm-up."
)
COMPETITORS = {
    "etl_nb": "`%%etl transform`",
    "jupysql": "JupySQL `%%sql`",
    "duckdb": "plain DuckDB",
}
BASELINE = "jupysql"
ONE_ROW, MANY_ROWS = "1 row", "many rows"
CASES = [ONE_ROW, MANY_ROWS]
GOALS = [
    Goal("a 1-row `%%etl` cell at most 1.0× JupySQL's `%%sql`", ONE_ROW, "etl_nb", 1.0, ("jupysql",)),
    Goal("a many-row `%%etl` cell at most 1.3× plain DuckDB", MANY_ROWS, "etl_nb", 1.3, ("duckdb",)),
]
MEASURES_MEMORY = False
ONE_PROCESS = True
SIZES = {"small": {"rows": 10_000, "rounds": 3}, "full": {"rows": 1_000_000, "rounds": 15}}

IMPORTS = {"etl_nb": ("etl_nb", "IPython"), "jupysql": ("sql",), "duckdb": ("duckdb",)}
SQL = {ONE_ROW: "SELECT count(*) AS n, sum(amount) AS total FROM big", MANY_ROWS: "SELECT * FROM big"}


@contextmanager
def prepare(size: str, workdir: Path) -> Iterator[dict[str, Any]]:
    """Nothing to share: the child builds its table in its own shell."""
    yield dict(SIZES[size])


def run(competitor: str, params: dict[str, Any]) -> dict[str, Any]:
    """In the child: every competitor, every case, ``rounds`` interleaved rounds; one sample each."""
    workdir = tempfile.mkdtemp(prefix="etl_nb_bench_cells_")
    os.chdir(workdir)
    shell = _shell(workdir)

    def cell(source: str) -> None:
        with redirect_stdout(io.StringIO()):
            result = shell.run_cell(source)
        if not result.success:
            raise SystemExit(f"cell failed: {source!r}: {result.error_in_exec or result.error_before_exec}")

    cell("%load_ext etl_nb")
    cell(
        f"%%etl transform big\nSELECT range AS id, range % 1000 AS customer_id, "
        f"(range % 997) * 1.5 AS amount FROM range({params['rows']})"
    )
    cell("import etl_nb\ncon = etl_nb.current().session.con")
    if "jupysql" in params.get("competitors", COMPETITORS):
        for line in (
            "%load_ext sql",
            "%config SqlMagic.displaylimit = 10",
            "%config SqlMagic.autopandas = False",
        ):
            cell(line)
        cell("%sql con --alias etl")
    con = shell.user_ns["con"]

    def plain(case: str) -> None:
        con.execute("DROP TABLE IF EXISTS plain_result")
        con.execute(f"CREATE TABLE plain_result AS {SQL[case]}")
        con.sql("SELECT * FROM plain_result LIMIT 10").pl()
        con.execute("SELECT count(*) FROM plain_result").fetchall()

    actions: dict[str, Callable[[str], None]] = {
        "etl_nb": lambda case: cell(f"%%etl transform result\n{SQL[case]}"),
        "jupysql": lambda case: cell(f"%%sql\n{SQL[case]}"),
        "duckdb": plain,
    }
    competitors = [c for c in COMPETITORS if c in params.get("competitors", COMPETITORS)]
    for name in competitors:  # warm up: caches, first-call imports
        for case in CASES:
            actions[name](case)
    samples = []
    for round_ in range(params["rounds"]):
        for name in rotated(competitors, round_):
            seconds = {case: timed(functools.partial(actions[name], case)) for case in CASES}
            samples.append({"competitor": name, "round": round_, "seconds": seconds})
    # The %%etl cell really materialised every row (not a lazy view).
    session = shell.user_ns["etl_nb"].current().session
    assert session.count("result") == params["rows"], "the %%etl cell did not keep every row"
    return {"samples": samples}


def _shell(workdir: str) -> Any:
    os.environ["ETL_NB_STORE_URL"] = f"sqlite:///{workdir}/runs.db"
    os.environ.setdefault("IPYTHONDIR", str(Path(workdir) / "ipython"))
    from IPython.testing.globalipapp import start_ipython

    shell = start_ipython()  # type: ignore[no-untyped-call]
    assert shell is not None
    return shell
