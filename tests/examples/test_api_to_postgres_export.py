"""The API + PostgreSQL example, exported both ways, merges the same rows as the notebook."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import papermill
import pytest
import sqlalchemy as sa

from etl_nb.notebook.export import export_notebook

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "api_to_postgres.ipynb"


def _table(url: str) -> list[Any]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM analytics.customer_revenue ORDER BY customer_id")).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def test_exported_notebook_and_script_merge_what_the_notebook_merges(
    new_database: Callable[[], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ETL_NB_HOME", str(tmp_path))
    source_db, plain_db, script_db = new_database(), new_database(), new_database()
    plain = export_notebook(NOTEBOOK, to="ipynb", output=tmp_path / "plain.ipynb")
    script = export_notebook(NOTEBOOK, to="py", output=tmp_path / "script.py")

    for notebook, url in ((NOTEBOOK, source_db), (plain, plain_db)):
        papermill.execute_notebook(
            str(notebook),
            str(tmp_path / f"{notebook.stem}.executed.ipynb"),
            parameters={"pg_url": url, "since": "2026-02-01"},
            cwd=str(tmp_path),
            progress_bar=False,
        )
    done = subprocess.run(
        [sys.executable, str(script), "--pg-url", script_db, "--since", "2026-02-01"],
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr

    expected = _table(source_db)
    assert len(expected) == 120
    assert sum(row[3] for row in expected) < 2000  # `since` was injected: fewer orders than all
    assert _table(plain_db) == expected
    assert _table(script_db) == expected
