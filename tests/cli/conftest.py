"""Fixtures for the ``etl-nb`` command: a project folder with data and notebooks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder (``ETL_NB_HOME``) holding the example data, isolated Jupyter dirs."""
    shutil.copytree(REPO / "notebooks" / "data", tmp_path / "data", ignore=shutil.ignore_patterns("output"))
    monkeypatch.setenv("ETL_NB_HOME", str(tmp_path))
    monkeypatch.delenv("ETL_NB_STORE_URL", raising=False)
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        folder = tmp_path / ".jupyter" / name.lower()
        folder.mkdir(parents=True)
        monkeypatch.setenv(name, str(folder))
    return tmp_path


@pytest.fixture
def api_notebook() -> Callable[..., Path]:
    """Writes a notebook: a parameters cell, then ``body`` as one code cell."""
    return _api_notebook


def _api_notebook(path: Path, body: str, parameters: str = 'start_date = "2026-01-01"') -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def etl_nb() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Runs the installed ``etl-nb`` command as a user would."""
    return _etl_nb


def _etl_nb(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "etl-nb"), *args]
    return subprocess.run(
        command, check=False, cwd=cwd, capture_output=True, text=True, env=os.environ.copy(), timeout=180
    )
