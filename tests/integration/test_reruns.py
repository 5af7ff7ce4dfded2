"""Running a pipeline again, in any of the ways a user does, never duplicates its rows."""

from __future__ import annotations

from pathlib import Path

import duckdb
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from etl_nb import Pipeline

ORDERS = "id,amount\n1,30.0\n2,20.0\n3,15.0\n"


@pytest.fixture
def kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real kernel that leaves nothing in the home folder."""
    for key, folder in [
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTHONDIR", "ipython"),
    ]:
        (tmp_path / "jupyter" / folder).mkdir(parents=True)
        monkeypatch.setenv(key, str(tmp_path / "jupyter" / folder))


def test_the_python_api_run_twice_leaves_the_rows_once(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(ORDERS)
    p = Pipeline("twice", base_dir=tmp_path)
    p.connect("lake", ".")
    p.extract("orders", source="lake", path="orders.csv")
    p.load("orders", to="lake", path="out/orders.parquet")
    p.run().raise_for_status()
    p.run().raise_for_status()
    assert (tmp_path / "out" / "orders.parquet").is_file()
    assert duckdb.sql(f"SELECT count(*) FROM '{tmp_path}/out/orders.parquet'").fetchall() == [(3,)]


@pytest.mark.usefixtures("kernel_env")
def test_a_notebook_run_twice_under_papermill_does_not_duplicate(tmp_path: Path) -> None:
    import papermill

    (tmp_path / "orders.csv").write_text(ORDERS)
    cells = [
        "%load_ext etl_nb",
        "%etl connect lake .",
        "%%etl extract orders --from lake\npath: orders.csv",
        "%etl load orders --to lake --path out/orders.parquet",
        "%etl run",
    ]
    notebook = tmp_path / "orders.ipynb"
    nb = new_notebook(
        cells=[new_code_cell(c) for c in cells],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    nbformat.write(nb, notebook)
    for attempt in range(2):
        papermill.execute_notebook(
            str(notebook),
            str(tmp_path / f"run{attempt}.ipynb"),
            cwd=str(tmp_path),
            kernel_name="python3",
            progress_bar=False,
        )
    written = tmp_path / "out" / "orders.parquet"
    assert written.is_file()
    assert duckdb.sql(f"SELECT count(*) FROM '{written}'").fetchall() == [(3,)]
