"""Lineage of a pipeline reading and writing PostgreSQL: datasets named the OpenLineage way, no secret."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from etl_nb import Pipeline

from ..lineage_events import column_lineage, events, validate

__all__ = ["events"]  # the fixture, used by name

SECRET = "s3cr3t-pass-word"


def test_postgres_datasets_are_named_by_server_and_table_and_no_secret_reaches_an_event(
    pg_url: str,
    pg: sa.Engine,
    make_pipeline: Callable[[str], Pipeline],
    events: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    schema = f"l_{uuid.uuid4().hex[:8]}"
    with pg.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        conn.execute(
            sa.text(f"CREATE TABLE {schema}.orders (id INT, customer_id INT, amount FLOAT, status TEXT)")
        )
        conn.execute(
            sa.text(f"INSERT INTO {schema}.orders VALUES (1, 10, 5.0, 'paid'), (2, 11, 7.0, 'open')")
        )
    url = make_url(pg_url)
    monkeypatch.setenv("LINEAGE_PG_PASSWORD", SECRET)  # trust auth: any password is accepted
    with_secret = f"postgresql://{url.username}:${{LINEAGE_PG_PASSWORD}}@{url.host}:{url.port}/{url.database}"

    p = make_pipeline("pg_lineage")
    p.connect("shop", with_secret, schema=schema)
    p.extract(
        "orders",
        source="shop",
        query="SELECT id, customer_id, amount * 2 AS doubled FROM orders WHERE status = 'paid'",
    )
    p.load("orders", to="shop", table=f"{schema}_out.paid", mode="replace")
    p.run().raise_for_status()

    start, complete = events()
    validate(complete)
    for event in (start, complete):
        assert SECRET not in str(event)
    server = f"postgres://{url.host}:{url.port}"
    assert [(d["namespace"], d["name"]) for d in complete["inputs"]] == [
        (server, f"{url.database}.{schema}.orders")
    ]
    assert [(d["namespace"], d["name"]) for d in complete["outputs"]] == [
        (server, f"{url.database}.{schema}_out.paid")
    ]
    source = f"{url.database}.{schema}.orders"
    filtered = (source, "status", "INDIRECT", "FILTER")
    assert column_lineage(complete) == {
        "id": {(source, "id", "DIRECT", "IDENTITY"), filtered},
        "customer_id": {(source, "customer_id", "DIRECT", "IDENTITY"), filtered},
        "doubled": {(source, "amount", "DIRECT", "TRANSFORMATION"), filtered},
    }
    with pg.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        conn.execute(sa.text(f"DROP SCHEMA {schema}_out CASCADE"))
