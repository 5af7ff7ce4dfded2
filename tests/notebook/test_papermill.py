"""Notebooks run by papermill in a real kernel: parameters injected, files written, errors fail the run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from nbtools import ANSI, write_notebook

from etl_nb.notebook.reader import read_notebook
from etl_nb.store import RunStore

DATA = Path(__file__).resolve().parents[2] / "notebooks" / "data"

# Written from docs/grammar.md only.
GRAMMAR_NOTEBOOK = [
    "%load_ext etl_nb",
    ('start_date = "2026-01-01"', ["parameters"]),
    "%etl connect lake data",
    "%%etl extract orders --from lake\npath: orders.csv",
    "%%etl transform paid\n"
    "SELECT customer_id, sum(amount) AS total\n"
    "FROM orders\n"
    "WHERE status = 'paid' AND created_at >= {{ start_date }}\n"
    "GROUP BY ALL\n"
    "ORDER BY customer_id",
    '%%etl transform flagged --python\npaid.with_columns(big=pl.col("total") > 90)',
    "%%etl check flagged\n- not_null: [customer_id, total]\n- unique: [customer_id]\n- row_count: {min: 1}",
    "%etl load flagged --to lake --path out/flagged.parquet --mode replace",
    "%etl run",
    "%etl dag",
    "import json, etl_nb\n"
    "p = etl_nb.current()\n"
    "json.dump({'connections': {k: v.model_dump(mode='json', exclude={'cell'}) "
    "for k, v in p.spec.connections.items()},\n"
    "           'steps': [s.model_dump(mode='json', exclude={'cell'}) for s in p.spec.steps],\n"
    "           'edges': p.dag().edges}, open('kernel.json', 'w'))",
]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jupyter_env: dict[str, str]) -> Path:
    shutil.copytree(DATA, tmp_path / "data", ignore=shutil.ignore_patterns("output"))
    for key, value in jupyter_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ETL_NB_STORE_URL", f"sqlite:///{tmp_path / 'runs.db'}")
    return tmp_path


def test_a_notebook_from_the_grammar_runs_under_papermill_with_an_injected_parameter(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import papermill

    notebook = write_notebook(project / "daily_revenue.ipynb", GRAMMAR_NOTEBOOK)
    monkeypatch.setenv("ETL_NB_NOTEBOOK", str(notebook))
    papermill.execute_notebook(
        str(notebook),
        str(project / "executed.ipynb"),
        parameters={"start_date": "2026-01-10"},
        cwd=str(project),
        kernel_name="python3",
        progress_bar=False,
    )
    written = pl.read_parquet(project / "data" / "out" / "flagged.parquet")
    assert written.to_dicts() == [
        {"customer_id": 102, "total": 99.99, "big": True},
        {"customer_id": 103, "total": 60.0, "big": False},
        {"customer_id": 104, "total": 15.0, "big": False},
    ]
    (run,) = RunStore(f"sqlite:///{project / 'runs.db'}").list_runs("daily_revenue")
    assert (run.status, run.params) == ("success", {"start_date": "2026-01-10"})

    # The reader sees the same steps and edges the kernel built.
    kernel = json.loads((project / "kernel.json").read_text())
    read = read_notebook(notebook)
    assert read.problems == []
    assert read.name == "daily_revenue"
    assert read.parameters == {"start_date": "2026-01-01"}
    assert {k: v.model_dump(mode="json", exclude={"cell"}) for k, v in read.spec.connections.items()} == (
        kernel["connections"]
    )
    assert [s.model_dump(mode="json", exclude={"cell"}) for s in read.spec.steps] == kernel["steps"]
    assert [list(e) for e in read.edges] == kernel["edges"]


def test_a_bad_cell_fails_the_papermill_run_with_its_one_line_message(project: Path) -> None:
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    cells = [
        "%load_ext etl_nb",
        "%etl connect lake data",
        "%%etl extract orders --from lake\npath: orders.csv",
        "%%etl transform revenue\nSELECT * FROM ordrs",
        "after = True",
    ]
    notebook = write_notebook(project / "bad.ipynb", cells)
    with pytest.raises(PapermillExecutionError) as failure:
        papermill.execute_notebook(
            str(notebook),
            str(project / "out.ipynb"),
            cwd=str(project),
            kernel_name="python3",
            progress_bar=False,
        )
    message = "Step 'revenue' reads table 'ordrs' but no step or connection makes it. Did you mean 'orders'?"
    assert failure.value.ename == "EtlUsageError"
    assert failure.value.evalue == message
    executed = {c.source: c for c in nbformat.read(project / "out.ipynb", as_version=4).cells}
    (error,) = [o for o in executed[cells[3]].outputs if o.output_type == "error"]
    assert [ANSI.sub("", line) for line in error.traceback] == [f"PipelineError: {message}"]
    assert executed[cells[4]].outputs == []
    assert executed[cells[4]].execution_count is None


def _etl_nb(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed ``etl-nb`` command, as a user runs it."""
    command = [str(Path(sys.executable).parent / "etl-nb"), *args]
    return subprocess.run(
        command, check=False, cwd=cwd, capture_output=True, text=True, env=os.environ.copy(), timeout=180
    )


def test_a_run_parameter_is_one_value_never_options_even_with_spaces_in_a_folder_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jupyter_env: dict[str, str]
) -> None:
    home = tmp_path / "project"
    shutil.copytree(DATA, home / "my data", ignore=shutil.ignore_patterns("output"))
    for key, value in jupyter_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ETL_NB_HOME", str(home))
    monkeypatch.setenv("ETL_NB_STORE_URL", f"sqlite:///{tmp_path / 'runs.db'}")
    cells: list[str | tuple[str, list[str]]] = [
        "%load_ext etl_nb",
        ('folder = "data"\nout = "orders.parquet"', ["parameters"]),
        "%etl connect lake {folder}",
        "%%etl extract orders --from lake\npath: orders.csv",
        "%etl load orders --to lake --path {out}",
    ]
    notebook = write_notebook(home / "values.ipynb", cells)
    value = "x.csv --mode replace --path ../../elsewhere.parquet"

    ran = _etl_nb("run", str(notebook), "-p", "folder", "my data", "-p", "out", value, cwd=home)

    assert ran.returncode == 0, ran.stderr
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    (listed,) = store.list_runs("values")
    run = store.get_run(listed.id)
    assert run is not None
    assert run.status == "success"
    load = next(s for s in run.steps if s.step.startswith("load:"))
    assert load.step == f"load:orders:lake:{value}"
    assert not (tmp_path / "elsewhere.parquet").exists()
    assert not (home / "elsewhere.parquet").exists()


def _recorded_error(tmp_path: Path) -> str:
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    (run,) = store.list_runs()
    assert run.status == "failed"
    return run.error or ""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jupyter_env: dict[str, str]) -> Path:
    """A project folder for ``etl-nb run`` with the example data and a run store of its own."""
    folder = tmp_path / "project"
    shutil.copytree(DATA, folder / "data", ignore=shutil.ignore_patterns("output"))
    for key, value in jupyter_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ETL_NB_HOME", str(folder))
    monkeypatch.setenv("ETL_NB_STORE_URL", f"sqlite:///{tmp_path / 'runs.db'}")
    return folder


HEAD: list[str | tuple[str, list[str]]] = [
    "# md\n# Revenue",
    "%load_ext etl_nb",
    ("start_date = '2026-01-01'", ["parameters"]),
    "# md\nThe orders.",
    "%etl connect lake data",
    "%%etl extract orders --from lake\npath: orders.csv",
]


def test_run_and_export_name_a_mistake_by_the_same_cell_number(home: Path, tmp_path: Path) -> None:
    cells = [*HEAD, "%%etl transform revenue\nSELECT * FROM ordrs", "# md\nThe end."]
    notebook = write_notebook(home / "typo.ipynb", cells)
    mistake = "Step 'revenue' reads table 'ordrs' but no step or connection makes it. Did you mean 'orders'?"

    exported = _etl_nb("export", str(notebook), "--to", "py", cwd=home)
    ran = _etl_nb("run", str(notebook), "-p", "start_date", "2026-01-05", cwd=home)

    assert exported.stderr == f"etl-nb: error: Cannot export: cell 7: {mistake} Nothing was written.\n"
    assert ran.returncode == 1
    assert _recorded_error(tmp_path) == f"cell 7 failed: PipelineError: {mistake}"
    assert f"cell 7 failed: PipelineError: {mistake}" in ran.stdout


@pytest.mark.parametrize("ending", [["%etl run", "# md\nDone."], []], ids=["at %etl run", "at the end"])
def test_a_recorded_run_names_the_cell_that_declares_the_failing_step(
    home: Path, tmp_path: Path, ending: list[str]
) -> None:
    cells = [
        *HEAD,
        "%%etl transform paid\nSELECT id, amount FROM orders",
        "%%etl check paid\n- not_null: [amont]",
        *ending,
    ]
    notebook = write_notebook(home / "late.ipynb", cells)

    ran = _etl_nb("run", str(notebook), "-p", "start_date", "2026-01-05", cwd=home)

    assert ran.returncode == 1
    assert _recorded_error(tmp_path) == (
        "cell 8 failed: PipelineError: Check not_null(amont) on 'paid' names column 'amont', which 'paid' "
        "does not have. Columns: amount, id."
    )


def test_a_recorded_run_names_a_sql_mistake_in_one_line_at_its_cell(home: Path, tmp_path: Path) -> None:
    cells = [*HEAD, "%%etl transform paid\nSELECT id,\n  amont\nFROM orders", "%etl run"]
    notebook = write_notebook(home / "sql.ipynb", cells)

    ran = _etl_nb("run", str(notebook), cwd=home)

    assert ran.returncode == 1
    error = _recorded_error(tmp_path)
    assert error.startswith(
        "cell 7 failed: PipelineError: SQL error in transform 'paid' at line 2, column 3: Binder Error: "
        'Referenced column "amont" not found in FROM clause!'
    )
    assert "\n" not in error


def test_under_papermill_a_run_keeps_one_output_and_no_widget_state(project: Path) -> None:
    import nbformat
    import papermill

    cells = [
        "%load_ext etl_nb",
        "%etl connect lake data",
        "%%etl extract orders --from lake\npath: orders.csv",
        *(f"%%etl transform t{i}\nSELECT * FROM orders" for i in range(4)),
        "%etl run",
    ]
    notebook = write_notebook(project / "progress.ipynb", cells)
    papermill.execute_notebook(
        str(notebook), str(project / "out.ipynb"), cwd=str(project), kernel_name="python3", progress_bar=False
    )
    executed = nbformat.read(project / "out.ipynb", as_version=4)
    (output,) = executed.cells[-1].outputs
    assert output.data["text/plain"].startswith("run ")
    assert "(5 steps)" in output.data["text/plain"].splitlines()[0]
    assert "widgets" not in executed.metadata
