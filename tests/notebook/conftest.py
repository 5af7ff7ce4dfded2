"""Fixtures for the notebook layer: a real IPython shell, real files, a real kernel for papermill."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The helpers live beside this file; pytest's import mode may not put this folder on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from nbtools import Notebook

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "notebooks" / "data"


@pytest.fixture(scope="session")
def ipython(tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("ipython")
    os.environ["IPYTHONDIR"] = str(home)
    from IPython.testing.globalipapp import start_ipython

    return start_ipython()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with the example data in ``data/`` and its own run store."""
    shutil.copytree(DATA, tmp_path / "data", ignore=shutil.ignore_patterns("output"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ETL_NB_STORE_URL", f"sqlite:///{tmp_path / 'runs.db'}")
    monkeypatch.delenv("ETL_NB_NOTEBOOK", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    return tmp_path


@pytest.fixture
def nb(ipython: Any, workdir: Path) -> Iterator[Notebook]:
    """A fresh notebook: empty namespace, etl_nb loaded, no pipeline yet."""
    from etl_nb.notebook import magics

    ipython.reset(new_session=False)
    magics._sessions.clear()
    magics._loaded_in.clear()  # %load_ext runs once per shell: the first cell takes this test's folder
    notebook = Notebook(ipython)
    notebook.ok("%load_ext etl_nb")
    yield notebook
    for session in magics._sessions.values():
        session.pipeline.close()
    magics._sessions.clear()


@pytest.fixture(scope="session")
def jupyter_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for a real kernel that leaves nothing in the home folder."""
    base = tmp_path_factory.mktemp("jupyter")
    return {
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_DATA_DIR": str(base / "data"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "IPYTHONDIR": str(base / "ipython"),
    }
