"""``Pipeline.run(resume=RUN_ID)`` starts a failed run again at the step that failed."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from etl_nb import Pipeline
from etl_nb.cli import main
from etl_nb.engine.cache_file import OutputCache, cache_path
from etl_nb.errors import EtlError
from etl_nb.store import RunStore
from etl_nb.store.fingerprints import FingerprintStore
from tests.integration.cache.conftest import CountingApi

PAGES = {"type": "page", "param": "page", "size_param": "per_page", "size": 3}
BROKEN = (
    "SELECT c.country, sum(o.amount) AS total FROM orders o JOIN customers c USING (customer) "
    "GROUP BY countryy"
)
FIXED = BROKEN.replace("countryy", "ALL")
LOAD = "load:totals:lake:out/totals.parquet"


def _pipeline(home: Path, api: CountingApi, totals: str, *, per_page: int = 3) -> Pipeline:
    p = Pipeline("shop", base_dir=home)
    p.connect("api", api.url, auth={"type": "bearer", "token": "${API_TOKEN}"})
    p.connect("lake", "./data")
    p.extract("orders", source="api", path="/orders", records="data", paginate={**PAGES, "size": per_page})
    p.extract("customers", source="lake", path="customers.csv")
    p.transform("totals", sql=totals)
    p.load("totals", to="lake", path="out/totals.parquet", mode="replace")
    return p


def test_a_resumed_run_makes_no_new_request_and_loads_once(
    etl_home: Path, lake: Path, api: CountingApi, token: str
) -> None:
    failed = _pipeline(etl_home, api, BROKEN).run()
    assert failed.status == "failed"
    assert failed.steps["totals"].status == "failed"
    assert not (lake / "out" / "totals.parquet").exists()
    requests = api.count()

    resumed = _pipeline(etl_home, api, FIXED).run(resume=failed.run_id)

    assert resumed.status == "success", resumed.error
    assert api.count() == requests  # the API's rows came from what the failed run kept
    whys = {name: step.why for name, step in resumed.steps.items()}
    assert whys["orders"] == f"reused (kept by run {failed.run_id}, resumed)"
    assert whys["totals"] == f"failed in run {failed.run_id}, code changed since"
    assert whys[LOAD] == f"did not run in run {failed.run_id}"
    assert resumed.steps[LOAD].rows == 3
    assert pl.read_parquet(lake / "out" / "totals.parquet").height == 3
    assert FingerprintStore(RunStore()).resumed_from(resumed.run_id) == failed.run_id
    # The run succeeded: what was kept for its resume is let go.
    assert [e for e in OutputCache(cache_path(etl_home)).entries() if e.pinned_by] == []


def test_resuming_after_a_change_upstream_of_the_failure_reruns_the_changed_step(
    etl_home: Path, lake: Path, api: CountingApi, token: str
) -> None:
    failed = _pipeline(etl_home, api, BROKEN).run()
    requests = api.count()

    resumed = _pipeline(etl_home, api, FIXED, per_page=5).run(resume=failed.run_id)

    assert resumed.status == "success", resumed.error
    assert resumed.steps["orders"].why == f"options changed since run {failed.run_id}"
    assert api.count() > requests
    assert resumed.steps["customers"].status == "success"


def test_a_run_that_failed_again_keeps_its_outputs_for_the_next_resume(
    etl_home: Path, lake: Path, api: CountingApi, token: str
) -> None:
    first = _pipeline(etl_home, api, BROKEN).run()
    second = _pipeline(etl_home, api, BROKEN.replace("countryy", "countryyy")).run(resume=first.run_id)
    assert second.status == "failed"
    requests = api.count()

    third = _pipeline(etl_home, api, FIXED).run(resume=second.run_id)

    assert third.status == "success", third.error
    assert third.steps["orders"].why == f"reused (kept by run {second.run_id}, resumed)"
    assert api.count() == requests


def test_resume_refuses_a_successful_run_an_unknown_id_and_another_pipelines_run(
    etl_home: Path, lake: Path, api: CountingApi, token: str
) -> None:
    good = _pipeline(etl_home, api, FIXED).run()
    failed = _pipeline(etl_home, api, BROKEN).run()
    other = Pipeline("other", base_dir=etl_home)
    other.transform("x", sql="SELECT 1 AS x")
    runs = len(RunStore().list_runs(limit=100))

    with pytest.raises(EtlError, match=f"Run {good.run_id} succeeded, so there is nothing to resume"):
        _pipeline(etl_home, api, FIXED).run(resume=good.run_id)
    with pytest.raises(EtlError, match="No run 'nope' to resume"):
        _pipeline(etl_home, api, FIXED).run(resume="nope")
    with pytest.raises(EtlError, match=f"Run {failed.run_id} is a run of 'shop', not of 'other'"):
        other.run(resume=failed.run_id)
    assert len(RunStore().list_runs(limit=100)) == runs  # nothing recorded for a refused resume


def test_show_says_which_run_a_run_resumed(
    etl_home: Path, lake: Path, api: CountingApi, token: str, capsys: pytest.CaptureFixture[str]
) -> None:
    failed = _pipeline(etl_home, api, BROKEN).run()
    resumed = _pipeline(etl_home, api, FIXED).run(resume=failed.run_id)

    assert main(["show", resumed.run_id]) == 0
    out = capsys.readouterr().out
    assert f"resumed from run {failed.run_id}" in out
    assert f"reused (kept by run {failed.run_id}, resumed)" in out


PG_URL = os.environ.get("ETL_NB_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def pg_schema() -> Iterator[tuple[sa.Engine, str]]:
    """A PostgreSQL schema of the test's own, dropped after it."""
    engine = sa.create_engine(
        make_url(PG_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    name = f"cache_{uuid.uuid4().hex[:8]}"
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {name}"))
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL does not answer: {exc}")
        pytest.skip("PostgreSQL does not answer; set ETL_NB_TEST_PG_URL")
    yield engine, name
    with engine.connect() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
    engine.dispose()


@pytest.mark.postgres
def test_an_api_extract_streamed_into_postgres_is_kept_when_a_transform_fails(
    etl_home: Path, api: CountingApi, token: str, pg_schema: tuple[sa.Engine, str]
) -> None:
    engine, schema = pg_schema

    def pipeline(totals: str) -> Pipeline:
        p = Pipeline("to_pg", base_dir=etl_home)
        p.connect("api", api.url, auth={"type": "bearer", "token": "${API_TOKEN}"})
        p.connect("pg", PG_URL)
        p.extract("orders", source="api", path="/orders", records="data", paginate=PAGES)
        p.transform("totals", sql=totals)  # fused into the load, which the API's rows stream into
        p.load("totals", to="pg", table=f"{schema}.totals", mode="replace")
        return p

    failed = pipeline("SELECT customer, sum(amountt) AS total FROM orders GROUP BY ALL").run()
    assert failed.status == "failed"
    requests = api.count()

    resumed = pipeline("SELECT customer, sum(amount) AS total FROM orders GROUP BY ALL").run(
        resume=failed.run_id
    )

    assert resumed.status == "success", resumed.error
    assert resumed.steps["orders"].why == f"reused (kept by run {failed.run_id}, resumed)"
    assert api.count() == requests
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT count(*) FROM {schema}.totals")).scalar() == 3
