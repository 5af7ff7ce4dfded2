"""The example notebook's merge via `etl-nb run`: dry and real, it reports inserted, updated, unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from .conftest import PG_URL, _admin_engine

NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "api_to_postgres.ipynb"
TARGET = "analytics.customer_revenue"


@pytest.fixture
def database(pg_url: str) -> Iterator[str]:
    """A database of this test's own: the notebook creates fixed schemas (shop, analytics)."""
    admin = _admin_engine(PG_URL)
    name = f"etl_nb_nb_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _etl_nb(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ETL_NB_HOME": str(project)}
    env.pop("ETL_NB_STORE_URL", None)
    env.pop("ETL_NB_DRY_RUN", None)
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        folder = project / ".jupyter" / name.lower()
        folder.mkdir(parents=True, exist_ok=True)
        env[name] = str(folder)
    command = [str(Path(sys.executable).parent / "etl-nb"), *args]
    return subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _merge_detail(project: Path, *extra: str, pg: str) -> tuple[dict[str, object], str]:
    done = _etl_nb(project, "run", str(NOTEBOOK), "-p", "pg_url", pg, *extra)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = json.loads(_etl_nb(project, "runs", "--json", "--limit", "1").stdout)
    shown = _etl_nb(project, "show", runs[0]["id"])
    record = json.loads(_etl_nb(project, "show", runs[0]["id"], "--json").stdout)
    (load,) = [s for s in record["steps"] if s["kind"] == "load"]
    return load["detail"], shown.stdout


def _checksum(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                sa.text(f"SELECT md5(string_agg(t::text, ',' ORDER BY customer_id)) FROM {TARGET} t")
            ).scalar()
        )


def test_the_example_merge_reports_the_same_counts_dry_and_real(database: str, tmp_path: Path) -> None:
    db = sa.create_engine(database)
    dry, shown = _merge_detail(tmp_path, "--dry-run", pg=database)
    assert dry == {"dry_run": True, "inserted": 120, "updated": 0, "unchanged": 0, "changed_columns": {}}
    assert "would insert 120, update 0, leave 0 unchanged" in shown
    with db.connect() as conn:
        assert not sa.inspect(conn).has_table("customer_revenue", schema="analytics")

    real, shown = _merge_detail(tmp_path, pg=database)
    assert real == {"inserted": 120, "updated": 0, "unchanged": 0, "changed_columns": {}}
    assert "inserted 120, updated 0, left 0 unchanged" in shown

    with db.begin() as conn:  # one order of customer 2 changes at the source
        conn.execute(sa.text("UPDATE shop.orders SET amount = amount + 100 WHERE id = 1"))
    before = _checksum(db)
    dry, shown = _merge_detail(tmp_path, "--dry-run", pg=database)
    assert dry == {
        "dry_run": True,
        "inserted": 0,
        "updated": 1,
        "unchanged": 119,
        "changed_columns": {"revenue": 1},
    }
    assert "would insert 0, update 1 (revenue 1), leave 119 unchanged" in shown
    assert _checksum(db) == before

    real, shown = _merge_detail(tmp_path, pg=database)
    assert real == {"inserted": 0, "updated": 1, "unchanged": 119, "changed_columns": {"revenue": 1}}
    assert _checksum(db) != before
    db.dispose()
