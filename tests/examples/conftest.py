"""Throwaway PostgreSQL databases for the example notebooks that need one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

PG_URL = os.environ.get("ETL_NB_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def new_database() -> Iterator[Callable[[], str]]:
    """Makes new, empty databases (returning their URLs); drops them all after the test."""
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make() -> str:
        name = f"etl_nb_example_{uuid.uuid4().hex[:8]}"
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        except sa.exc.OperationalError as exc:
            if os.environ.get("CI") == "true":
                pytest.fail(f"PostgreSQL at {PG_URL} is not reachable: {exc.orig}")
            pytest.skip(f"PostgreSQL at {PG_URL} is not reachable (set ETL_NB_TEST_PG_URL)")
        made.append(name)
        return sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)

    yield make
    with admin.connect() as conn:
        for name in made:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def pg_database(new_database: Callable[[], str]) -> str:
    """The URL of a new, empty database, dropped after the test."""
    return new_database()
