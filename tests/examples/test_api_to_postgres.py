"""notebooks/api_to_postgres.ipynb, run by papermill against its own database."""

from __future__ import annotations

from pathlib import Path

import papermill
import pytest
import sqlalchemy as sa

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "api_to_postgres.ipynb"


def _run(pg_url: str, tmp_path: Path) -> None:
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(tmp_path / "executed.ipynb"),
        parameters={"pg_url": pg_url},
        cwd=str(NOTEBOOK.parent),
        progress_bar=False,
    )


def test_the_example_merges_api_customers_with_database_orders_and_reruns_only_changes(
    pg_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ETL_NB_HOME", str(tmp_path))
    _run(pg_database, tmp_path)
    db = sa.create_engine(pg_database)
    with db.connect() as conn:
        totals = conn.execute(
            sa.text("SELECT count(*), sum(orders), sum(revenue) FROM analytics.customer_revenue")
        ).one()
        expected = conn.execute(sa.text("SELECT count(*), sum(amount) FROM shop.orders")).one()
        country = conn.execute(
            sa.text("SELECT country FROM analytics.customer_revenue WHERE customer_id = 3")
        ).scalar_one()
        versions = dict(
            conn.execute(sa.text("SELECT customer_id, xmin::text FROM analytics.customer_revenue")).all()
        )
    assert totals == (120, expected[0], expected[1])
    assert country == "FR"  # from the API's nested address.country

    with db.begin() as conn:  # one order changes at the source
        conn.execute(sa.text("UPDATE shop.orders SET amount = amount + 100 WHERE id = 1"))
    _run(pg_database, tmp_path)

    with db.connect() as conn:
        after = dict(
            conn.execute(sa.text("SELECT customer_id, xmin::text FROM analytics.customer_revenue")).all()
        )
        revenue = conn.execute(sa.text("SELECT sum(revenue) FROM analytics.customer_revenue")).scalar_one()
    db.dispose()
    changed = [customer for customer, version in after.items() if versions[customer] != version]
    assert changed == [2]  # order 1 belongs to customer 1 + 1 % 120 = 2
    assert revenue == expected[1] + 100
