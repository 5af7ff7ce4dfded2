"""Fixtures for runs, schedules and workers: a project folder, notebooks, the ``etl-nb`` command."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import pytest
import sqlalchemy as sa

ETL_NB = str(Path(sys.executable).parent / "etl-nb")
PG_URL = os.environ.get("ETL_NB_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("ETL_NB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def project(etl_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's project folder (``ETL_NB_HOME``), with Jupyter's folders inside it."""
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        folder = etl_home / ".jupyter" / name.lower()
        folder.mkdir(parents=True)
        monkeypatch.setenv(name, str(folder))
    monkeypatch.setenv("ETL_NB_LEASE_SECONDS", "3")
    monkeypatch.delenv("ETL_NB_ALERT", raising=False)
    return etl_home


def write_notebook(path: Path, body: str, parameters: str = "") -> Path:
    """A notebook: a cell tagged ``parameters`` (when given), then ``body`` as one code cell."""
    nb = nbformat.v4.new_notebook()
    cells = []
    if parameters:
        params = nbformat.v4.new_code_cell(parameters)
        params.metadata["tags"] = ["parameters"]
        cells.append(params)
    nb.cells = [*cells, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def notebook() -> Callable[..., Path]:
    """Writes a notebook (see ``write_notebook``)."""
    return write_notebook


def run_etl_nb(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """The installed ``etl-nb`` command, run as a user would."""
    return subprocess.run(
        [ETL_NB, *args],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=timeout,
    )


@pytest.fixture
def etl_nb() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Runs the installed ``etl-nb`` command (see ``run_etl_nb``)."""
    return run_etl_nb


@pytest.fixture
def pg_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh PostgreSQL database for the test's run store (``ETL_NB_STORE_URL``)."""
    name = f"etl_nb_runs_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    monkeypatch.setenv("ETL_NB_STORE_URL", url)
    yield url
    from etl_nb.store.runs import _engines

    engine = _engines.pop(url, None)
    if engine is not None:
        engine.dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
