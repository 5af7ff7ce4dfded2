"""``etl-nb run`` of a notebook of ``%%etl`` cells is one atomic, incremental pipeline run."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import nbformat

Run = subprocess.CompletedProcess[str]


def _notebook(path: Path, *cells: str, parameters: str = 'status = "paid"') -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("%load_ext etl_nb")]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _shop(project: Path, rows: list[tuple[int, str, str]]) -> None:
    with sqlite3.connect(project / "shop.db") as db:
        db.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER, status TEXT, updated_at TEXT)")
        db.executemany("INSERT INTO orders VALUES (?, ?, ?)", rows)


def _count(project: Path, table: str) -> int:
    with sqlite3.connect(project / "shop.db") as db:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


INCREMENTAL = (
    "%etl connect shop sqlite:///shop.db",
    "%%etl extract orders --from shop --incremental updated_at\n"
    "SELECT * FROM orders WHERE status = {{ status }}",
    "%etl load orders --to shop --table copied --mode append",
)


def test_a_second_run_extracts_only_new_rows(project: Path, etl_nb: Callable[..., Run]) -> None:
    _shop(project, [(1, "paid", "2026-01-01"), (2, "paid", "2026-01-02"), (3, "open", "2026-01-02")])
    notebook = _notebook(project / "inc.ipynb", *INCREMENTAL)

    assert etl_nb("run", str(notebook), cwd=project).returncode == 0
    assert _count(project, "copied") == 2
    _shop(project, [(4, "paid", "2026-01-03")])
    assert etl_nb("run", str(notebook), cwd=project).returncode == 0

    assert _count(project, "copied") == 3
    runs = json.loads(etl_nb("runs", "--json", cwd=project).stdout)
    assert [r["rows"] for r in runs] == [1, 2]  # newest first
    assert runs[0]["params"] == {"status": "paid"}  # the parameters cell's default, recorded


def test_a_notebook_ending_in_etl_run_loads_once(project: Path, etl_nb: Callable[..., Run]) -> None:
    _shop(project, [(1, "paid", "2026-01-01"), (2, "paid", "2026-01-02")])
    notebook = _notebook(project / "twice.ipynb", *INCREMENTAL, "%etl run")

    assert etl_nb("run", str(notebook), cwd=project).returncode == 0

    assert _count(project, "copied") == 2


def test_a_failing_check_after_a_load_cell_leaves_the_target_untouched(
    project: Path, etl_nb: Callable[..., Run]
) -> None:
    _shop(project, [(1, "paid", "2026-01-01")])
    notebook = _notebook(
        project / "fails.ipynb",
        *INCREMENTAL,
        "%%etl transform none_open\nSELECT * FROM orders WHERE status = 'open'",
        "%%etl check none_open\n- row_count: {min: 1}",
    )

    done = etl_nb("run", str(notebook), cwd=project)

    assert done.returncode == 1
    with sqlite3.connect(project / "shop.db") as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "copied" not in tables
    run = json.loads(etl_nb("runs", "--json", cwd=project).stdout)[0]
    assert run["status"] == "failed"
    assert "row_count(min=1): 0 rows, expected at least 1" in run["error"]


def test_each_step_runs_once_when_steps_follow_an_etl_run(project: Path, etl_nb: Callable[..., Run]) -> None:
    _shop(project, [(1, "paid", "2026-01-01"), (2, "paid", "2026-01-02")])
    notebook = _notebook(
        project / "later.ipynb",
        *INCREMENTAL,
        "%etl run",
        "%%etl transform latest\nSELECT max(id) AS id FROM orders",
        "%etl show latest",
        "%etl load latest --to shop --table latest --mode append",
    )

    done = etl_nb("run", str(notebook), cwd=project)

    assert done.returncode == 0, done.stdout + done.stderr
    assert _count(project, "copied") == 2  # the load before %etl run did not run again
    assert _count(project, "latest") == 1


def test_run_only_in_a_recorded_run_leaves_the_rest_to_the_end(
    project: Path, etl_nb: Callable[..., Run]
) -> None:
    _shop(project, [(1, "paid", "2026-01-01")])
    notebook = _notebook(
        project / "only.ipynb",
        *INCREMENTAL,
        "%%etl transform shaped\nSELECT id * 10 AS id FROM orders",
        "%etl run --only shaped",
        "%etl load shaped --to shop --table shaped --mode append",
    )

    done = etl_nb("run", str(notebook), cwd=project)

    assert done.returncode == 0, done.stdout + done.stderr
    assert _count(project, "copied") == 1
    assert _count(project, "shaped") == 1
