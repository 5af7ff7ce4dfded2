"""Real PostgreSQL and MariaDB for the database connector tests.

The servers come from ``ETL_NB_TEST_PG_URL`` and ``ETL_NB_TEST_MYSQL_URL``
(defaults: the machine's loopback servers). Each test session creates its own
database on each server, with a random name, and drops it afterwards. In CI
(``CI=true``) a server that does not answer fails the run; elsewhere the tests
that need it are skipped with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from etl_nb import Pipeline

PG_URL = os.environ.get("ETL_NB_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MYSQL_URL = os.environ.get("ETL_NB_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def _unavailable(what: str, url: str, exc: BaseException) -> None:
    shown = make_url(url).render_as_string(hide_password=True)
    reason = f"{what} at {shown} does not answer ({exc.__class__.__name__})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI needs it (start it, or set the URL variable).", pytrace=False)
    pytest.skip(
        f"{reason}; set {'ETL_NB_TEST_PG_URL' if 'Postgre' in what else 'ETL_NB_TEST_MYSQL_URL'} "
        "or start the server to run these tests."
    )


def _admin_engine(url: str) -> sa.Engine:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return sa.create_engine(parsed, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """The URL of a fresh PostgreSQL database, dropped after the session."""
    admin = _admin_engine(PG_URL)
    name = f"etl_nb_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        _unavailable("PostgreSQL", PG_URL, exc)
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    """The URL of a fresh MariaDB/MySQL database, dropped after the session."""
    admin = _admin_engine(MYSQL_URL)
    name = f"etl_nb_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    except Exception as exc:
        admin.dispose()
        _unavailable("MariaDB", MYSQL_URL, exc)
    yield make_url(MYSQL_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
    admin.dispose()


@pytest.fixture(scope="session")
def pg(pg_url: str) -> Iterator[sa.Engine]:
    """An engine on the session's PostgreSQL database, for setting up and checking tables."""
    engine = _admin_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def mysql(mysql_url: str) -> Iterator[sa.Engine]:
    """An engine on the session's MariaDB database."""
    engine = _admin_engine(mysql_url)
    yield engine
    engine.dispose()


@pytest.fixture
def schema(pg: sa.Engine) -> Iterator[str]:
    """A PostgreSQL schema of the test's own."""
    name = f"t_{uuid.uuid4().hex[:8]}"
    with pg.connect() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {name}"))
    yield name
    with pg.connect() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))


@pytest.fixture
def make_pipeline(tmp_path: Path) -> Iterator[Callable[[str], Pipeline]]:
    """Pipelines with their own folder and run store, closed after the test."""
    made: list[Pipeline] = []

    def make(name: str = "db_test") -> Pipeline:
        pipeline = Pipeline(name, base_dir=tmp_path, store=f"sqlite:///{tmp_path / 'store.db'}")
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        pipeline.close()
