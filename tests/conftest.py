"""Fixtures shared by the whole suite.

Every test gets its own project folder: ``ETL_NB_HOME`` and the run store
point into ``tmp_path``, so no test reads or writes the repository's
``.etl_nb`` folder or sees another test's runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def etl_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh project folder for the test, with its own SQLite run store."""
    home = tmp_path / "etl_home"
    home.mkdir()
    monkeypatch.setenv("ETL_NB_HOME", str(home))
    monkeypatch.setenv("ETL_NB_STORE_URL", f"sqlite:///{home / '.etl_nb' / 'etl_nb.db'}")
    # Set only inside `etl-nb run`'s kernel; a leaked value would file runs under another run.
    monkeypatch.delenv("ETL_NB_RUN_ID", raising=False)
    return home


@pytest.fixture
def store_url(etl_home: Path) -> str:
    """The URL of this test's run store."""
    return f"sqlite:///{etl_home / '.etl_nb' / 'etl_nb.db'}"
