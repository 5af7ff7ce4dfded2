"""One history per project: a notebook's exported script records into the notebook's store.

Scripts run from another folder (`/tmp`, cron's home), and a notebook run by
plain papermill knows which notebook it is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from etl_nb.store import RunStore

BIN = Path(sys.executable).parent


def _notebook(path: Path, cells: list[str]) -> Path:
    nb = new_notebook(
        cells=[new_code_cell(c) for c in cells],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    nbformat.write(nb, path)
    return path


@pytest.fixture
def plain_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a user's shell: no ETL_NB_HOME, no store URL, Jupyter kept in tmp."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETL_NB_")}
    for key, folder in [
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTHONDIR", "ipython"),
    ]:
        (tmp_path / "jupyter" / folder).mkdir(parents=True)
        env[key] = str(tmp_path / "jupyter" / folder)
    return env


def test_an_exported_script_run_from_another_folder_records_into_its_notebooks_store(
    tmp_path: Path, plain_env: dict[str, str]
) -> None:
    project = tmp_path / "project"
    (project / ".etl_nb").mkdir(parents=True)  # the project's history, from earlier runs
    folder = project / "pipelines"
    folder.mkdir()
    (folder / "orders.csv").write_text("id,amount\n1,2.5\n2,4.0\n")
    notebook = _notebook(
        folder / "orders_daily.ipynb",
        [
            "%load_ext etl_nb",
            "%etl connect lake .",
            "%%etl extract orders --from lake\npath: orders.csv",
            "%etl load orders --to lake --path out/orders.parquet",
        ],
    )
    subprocess.run(
        [str(BIN / "etl-nb"), "export", str(notebook), "--to", "py"], check=True, env=plain_env, cwd=folder
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run(
        [sys.executable, str(folder / "orders_daily.py")], check=True, env=plain_env, cwd=elsewhere
    )
    assert (folder / "out" / "orders.parquet").is_file()
    assert not (elsewhere / ".etl_nb").exists()
    (run,) = RunStore(f"sqlite:///{project / '.etl_nb' / 'etl_nb.db'}").list_runs("orders_daily")
    assert run.status == "success"


def test_a_kernel_under_plain_papermill_knows_its_notebook(tmp_path: Path, plain_env: dict[str, str]) -> None:
    folder = tmp_path / "nbs"
    folder.mkdir()
    notebook = _notebook(
        folder / "penguins_weekly.ipynb",
        [
            "from etl_nb.project import papermill_notebook\n"
            "open('seen.txt', 'w').write(str(papermill_notebook()))"
        ],
    )
    subprocess.run(
        [str(BIN / "papermill"), notebook.name, "out.ipynb", "--cwd", str(folder)],
        check=True,
        env=plain_env,
        cwd=folder,
        capture_output=True,
    )
    assert (folder / "seen.txt").read_text() == str(notebook)
