"""``etl-nb run / runs / show``: recorded notebook runs and clear answers to bad input."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import duckdb
import nbformat
import pytest

Run = subprocess.CompletedProcess[str]

REVENUE = """
from etl_nb import Pipeline
p = Pipeline("revenue")
p.connect("lake", "data")
p.extract("orders", source="lake", path="orders.csv")
p.transform("paid", sql="SELECT * FROM orders WHERE status = 'paid' AND created_at >= {{ start_date }}")
p.load("paid", to="lake", path="out/paid.parquet", mode="replace")
p.run(params={"start_date": start_date}).raise_for_status()
"""


def test_run_injects_parameters_records_the_run_and_keeps_the_executed_notebook(
    project: Path, api_notebook: Callable[..., Path], etl_nb: Callable[..., Run]
) -> None:
    notebook = api_notebook(project / "revenue.ipynb", REVENUE)

    done = etl_nb("run", str(notebook), "-p", "start_date", "2026-01-10", cwd=project)

    assert done.returncode == 0, done.stderr
    rows = duckdb.sql(f"SELECT count(*) FROM '{project / 'data/out/paid.parquet'}'").fetchall()[0][0]
    assert rows == 3  # paid orders on or after 2026-01-10
    listed = json.loads(etl_nb("runs", "--json", cwd=project).stdout)
    recorded = next(r for r in listed if r["notebook"] == str(notebook))
    assert recorded["status"] == "success"
    assert recorded["params"] == {"start_date": "2026-01-10"}
    executed = nbformat.read(recorded["output_notebook"], as_version=4)
    assert any('start_date = "2026-01-10"' in c.source for c in executed.cells)
    shown = json.loads(etl_nb("show", recorded["id"][:15], "--json", cwd=project).stdout)
    assert shown["id"] == recorded["id"]
    steps = {s["step"]: s for s in shown["steps"]}
    assert steps["load:paid:lake:out/paid.parquet"]["rows"] == 3
    assert steps["orders"]["status"] == "success"
    assert shown["rows"] == 3


def test_run_of_a_failing_notebook_exits_1_and_records_the_error(
    project: Path, api_notebook: Callable[..., Path], etl_nb: Callable[..., Run]
) -> None:
    notebook = api_notebook(project / "broken.ipynb", REVENUE.replace("orders.csv", "missing.csv"))

    done = etl_nb("run", str(notebook), cwd=project)

    assert done.returncode == 1
    assert "failed" in done.stdout
    run = json.loads(etl_nb("runs", "--json", "--pipeline", "broken.ipynb", cwd=project).stdout)[0]
    assert run["status"] == "failed"
    assert "No files match 'missing.csv'" in run["error"]
    assert not (project / "data" / "out" / "paid.parquet").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nowhere.ipynb"], "Notebook 'nowhere.ipynb' does not exist. Check the path."),
        (["run", "x.ipynb", "-p", "1bad", "v"], "Parameter name '1bad' is not a Python identifier."),
        (["run", "x.ipynb", "-p", "only_name"], "argument -p/--param: expected 2 arguments"),
        (["runs", "--limit", "0"], "'0' is not a whole number above 0"),
        (["show", "no-such-run"], "No run 'no-such-run' in the store"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_input_gets_one_line_with_the_fix_and_exit_code_2(
    project: Path, args: list[str], message: str, etl_nb: Callable[..., Run]
) -> None:
    done = etl_nb(*args, cwd=project)

    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_runs_on_an_empty_store_says_how_to_start(project: Path, etl_nb: Callable[..., Run]) -> None:
    done = etl_nb("runs", cwd=project)

    assert done.returncode == 0
    assert "No runs recorded yet" in done.stdout


def test_a_url_parameter_is_recorded_without_its_password(
    project: Path, api_notebook: Callable[..., Path], etl_nb: Callable[..., Run]
) -> None:
    notebook = api_notebook(project / "url.ipynb", "print(source_url[:10])", parameters='source_url = ""')

    done = etl_nb("run", str(notebook), "-p", "source_url", "postgresql://app:s3cr3t-pw@db/x", cwd=project)

    assert done.returncode == 0, done.stderr
    assert "s3cr3t-pw" not in done.stdout
    listed = etl_nb("runs", "--json", cwd=project).stdout
    assert "s3cr3t-pw" not in listed
    assert json.loads(listed)[0]["params"]["source_url"] == "postgresql://app:***@db/x"


def test_runs_lists_failed_and_successful_runs_with_their_ids_and_step_names_verbatim(
    project: Path, api_notebook: Callable[..., Path], etl_nb: Callable[..., Run]
) -> None:
    good = api_notebook(project / "good.ipynb", REVENUE.replace('"lake"', '"o"').replace("lake", "o"))
    bad = api_notebook(project / "bad.ipynb", REVENUE.replace("orders.csv", "missing.csv"))
    assert etl_nb("run", str(good), cwd=project).returncode == 0
    assert etl_nb("run", str(bad), cwd=project).returncode == 1

    listed = etl_nb("runs", cwd=project)

    assert listed.returncode == 0, listed.stderr
    ids = [r["id"] for r in json.loads(etl_nb("runs", "--json", cwd=project).stdout)]
    assert all(run_id in listed.stdout for run_id in ids)
    assert "No files match 'missing.csv'" in listed.stdout
    shown = etl_nb("show", ids[1], cwd=project).stdout
    assert "load:paid:o:out/paid.parquet" in shown  # not an emoji
