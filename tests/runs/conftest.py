"""Fixtures for runs, schedules and workers: a project folder, notebooks, the ``etl-nb`` command."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

# The helpers live beside this file; pytest's import mode may not put this folder on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from runtools import PG_URL, run_etl_nb, write_notebook


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


@pytest.fixture
def notebook() -> Callable[..., Path]:
    """Writes a notebook (see ``write_notebook``)."""
    return write_notebook


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
