"""`Pipeline.run(cache=True)` reuses unchanged steps, reruns changed ones and their readers, says why."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from etl_nb import Pipeline
from etl_nb.cli import main
from etl_nb.engine.cache_file import OutputCache, cache_path
from etl_nb.notebook.preview import run_bundle
from etl_nb.results import RunResult
from tests.integration.cache.conftest import CountingApi

PAGES = {"type": "page", "param": "page", "size_param": "per_page", "size": 3}
TOTALS = (
    "SELECT c.country, sum(o.amount) AS total FROM orders o JOIN customers c USING (customer) GROUP BY ALL"
)


def _pipeline(
    home: Path,
    api: CountingApi,
    *,
    totals: str = TOTALS,
    ttl: str | None = "1h",
    top: str = "totals.filter(pl.col('total') >= min_total)",
) -> Pipeline:
    p = Pipeline("shop", base_dir=home)
    p.connect("api", api.url, auth={"type": "bearer", "token": "${API_TOKEN}"})
    p.connect("lake", "./data")
    p.extract("orders", source="api", path="/orders", records="data", paginate=PAGES, cache_ttl=ttl)
    p.extract("customers", source="lake", path="customers.csv")
    p.transform("totals", sql=totals)
    p.transform("top", python=top)
    p.check("totals", [{"not_null": ["country"]}])
    p.load("top", to="lake", path="out/top.parquet", mode="replace")
    return p


def _why(run: RunResult) -> dict[str, str | None]:
    assert run.status == "success", run.error
    return {name: step.why for name, step in run.steps.items()}


def _ran(run: RunResult) -> set[str]:
    return {name for name, step in run.steps.items() if (step.detail or {}).get("decision") == "ran"}


LOAD = "load:top:lake:out/top.parquet"
PARAMS = {"min_total": 0}


def test_a_rerun_with_nothing_changed_reuses_every_step_and_reads_no_source(
    etl_home: Path, lake: Path, api: CountingApi, token: str
) -> None:
    first = _pipeline(etl_home, api).run(PARAMS, cache=True)
    assert set(_why(first).values()) == {"first run"}
    requests = api.count()
    assert requests > 0
    expected = first_table = pl.read_parquet(lake / "out" / "top.parquet")
    # Same size and mtime, other bytes: a source read now would give other rows.
    customers = lake / "customers.csv"
    stat = customers.stat()
    customers.write_text("customer,country\nc0,XX\nc1,YY\nc2,ZZ\n")
    os.utime(customers, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    again = _pipeline(etl_home, api)
    second = again.run(PARAMS, cache=True)

    assert api.count() == requests
    whys = _why(second)
    assert all(
        w is not None and w.startswith("reused (unchanged since run ") for n, w in whys.items() if n != LOAD
    )
    assert whys[LOAD] == f"skipped (input and target unchanged since run {first.run_id})"
    assert again.table("customers")["country"].to_list() == ["FR", "DE", "IT"]
    assert again.table("top").sort("country").equals(expected.sort("country"))
    assert first_table.equals(pl.read_parquet(lake / "out" / "top.parquet"))
    assert second.steps["orders"].rows == 7


def test_whitespace_comments_and_keyword_case_do_not_count(
    etl_home: Path, lake: Path, api: CountingApi, token: str
) -> None:
    _pipeline(etl_home, api).run(PARAMS, cache=True)
    reworded = (
        "select c.country,\n  SUM(o.amount) as total -- per country\n"
        "from orders o join customers c using (customer)\ngroup by all"
    )
    top = "# the big ones\ntotals.filter(\n    pl.col('total') >= min_total\n)"

    second = _pipeline(etl_home, api, totals=reworded, top=top).run(PARAMS, cache=True)

    assert _ran(second) == set()


def test_a_code_change_reruns_the_step_and_what_reads_it(
    etl_home: Path, lake: Path, api: CountingApi, token: str
) -> None:
    _pipeline(etl_home, api).run(PARAMS, cache=True)
    requests = api.count()

    second = _pipeline(etl_home, api, totals=TOTALS.replace("sum(o.amount)", "max(o.amount)")).run(
        PARAMS, cache=True
    )

    whys = _why(second)
    assert whys["totals"] == "code changed"
    assert whys["top"] == whys["check:totals"] == "upstream totals reran"
    assert whys[LOAD] == "upstream top reran"
    assert _ran(second) == {"totals", "top", "check:totals", LOAD}
    assert api.count() == requests


def test_a_parameter_change_names_the_parameter_and_both_values(
    etl_home: Path, lake: Path, api: CountingApi, token: str
) -> None:
    _pipeline(etl_home, api).run({"min_total": 0}, cache=True)

    second = _pipeline(etl_home, api).run({"min_total": 100}, cache=True)

    assert _why(second)["top"] == "parameter min_total changed (0 → 100)"
    assert _ran(second) == {"top", LOAD}


def test_a_changed_file_reruns_its_extract_and_names_the_file(
    etl_home: Path, lake: Path, api: CountingApi, token: str
) -> None:
    _pipeline(etl_home, api).run(PARAMS, cache=True)
    requests = api.count()
    (lake / "customers.csv").write_text("customer,country\nc0,FR\nc1,DE\nc2,ES\n")

    p = _pipeline(etl_home, api)
    second = p.run(PARAMS, cache=True)

    whys = _why(second)
    assert whys["customers"] == "data/customers.csv changed"
    assert whys["totals"] == "upstream customers reran"
    assert whys["orders"].startswith("reused")
    assert "ES" in p.table("top")["country"].to_list()
    assert api.count() == requests


def test_an_api_extract_without_cache_ttl_is_read_every_time(
    etl_home: Path, lake: Path, api: CountingApi, token: str
) -> None:
    _pipeline(etl_home, api, ttl=None).run(PARAMS, cache=True)
    requests = api.count()

    second = _pipeline(etl_home, api, ttl=None).run(PARAMS, cache=True)

    assert _why(second)["orders"] == "not cached (API source without cache_ttl)"
    assert _why(second)["customers"].startswith("reused")
    assert api.count() == 2 * requests


def test_an_expired_cache_ttl_reads_the_api_again(
    etl_home: Path, lake: Path, api: CountingApi, token: str
) -> None:
    _pipeline(etl_home, api, ttl="1s").run(PARAMS, cache=True)
    requests = api.count()
    time.sleep(1.2)  # let the ttl run out (what is checked is the reason, not a duration)

    second = _pipeline(etl_home, api, ttl="1s").run(PARAMS, cache=True)

    assert _why(second)["orders"] == "cache_ttl expired"
    assert _why(second)["totals"] == "upstream orders reran"
    assert api.count() == 2 * requests


def test_a_load_runs_again_when_its_target_is_not_as_the_last_run_left_it(
    etl_home: Path, lake: Path, api: CountingApi, token: str
) -> None:
    first = _pipeline(etl_home, api).run(PARAMS, cache=True)
    (lake / "out" / "top.parquet").unlink()

    second = _pipeline(etl_home, api).run(PARAMS, cache=True)

    assert _why(second)[LOAD] == f"target out/top.parquet changed since run {first.run_id}"
    assert _ran(second) == {LOAD}
    assert pl.read_parquet(lake / "out" / "top.parquet").height == second.steps[LOAD].rows


def test_a_database_extract_without_cache_ttl_is_never_reused(etl_home: Path, lake: Path) -> None:
    with sqlite3.connect(etl_home / "shop.db") as db:
        db.execute("CREATE TABLE orders (id INTEGER, amount REAL)")
        db.executemany("INSERT INTO orders VALUES (?, ?)", [(1, 1.5), (2, 2.5)])

    def pipeline() -> Pipeline:
        p = Pipeline("db", base_dir=etl_home)
        p.connect("shop", "sqlite:///shop.db")
        p.extract("orders", source="shop", query="SELECT * FROM orders")
        p.transform("big", sql="SELECT * FROM orders WHERE amount > 2")
        return p

    pipeline().run(cache=True)
    with sqlite3.connect(etl_home / "shop.db") as db:
        db.execute("INSERT INTO orders VALUES (3, 9.0)")
    p = pipeline()
    second = p.run(cache=True)

    assert _why(second) == {
        "orders": "not cached (database source without cache_ttl)",
        "big": "upstream orders reran",
    }
    assert p.table("big")["id"].to_list() == [2, 3]


def test_reused_outputs_keep_their_exact_types(etl_home: Path, lake: Path) -> None:
    sql = (
        "SELECT 1.25::DECIMAL(10, 2) AS price, DATE '2026-01-02' AS day, [1, 2] AS tags, "
        "{'a': 1, 'b': 'x'} AS info, TIMESTAMPTZ '2026-01-02 03:04:05+00' AS at, 7::UTINYINT AS small"
    )

    def pipeline() -> Pipeline:
        p = Pipeline("types", base_dir=etl_home)
        p.transform("typed", sql=sql)
        return p

    first = pipeline()
    first.run(cache=True)
    before = first.session.relation("typed").types
    second = pipeline()
    run = second.run(cache=True)

    assert (run.steps["typed"].why or "").startswith("reused")
    assert second.session.relation("typed").types == before
    assert second.table("typed").equals(first.table("typed"))


def test_the_cache_cap_evicts_the_least_recently_used_outputs(
    etl_home: Path, lake: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Each output takes at least one 256 kB block of the cache file, and the file's own
    # index about 768 kB: room for three outputs.
    monkeypatch.setenv("ETL_NB_CACHE_MAX", "1.5MB")

    def pipeline(*names: str) -> Pipeline:
        p = Pipeline("cap", base_dir=etl_home)
        for name in names:
            p.transform(name, sql=f"SELECT range AS id, '{name}' AS name FROM range(1000)")
        return p

    pipeline("a", "b", "c").run(cache=True)
    pipeline("d", "e").run(cache=True)

    kept = {e.step for e in OutputCache(cache_path(etl_home)).entries()}
    assert {"d", "e"} <= kept  # the newest stay
    assert "a" not in kept  # the least recently used went first
    assert len(kept) == 3
    again = pipeline("a", "b", "c", "d", "e").run(cache=True)
    assert {n for n, s in again.steps.items() if s.why == "not in the cache"} == {"a", "b", "c"} - kept

    assert main(["cache", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 3
    assert main(["cache", "clear"]) == 0
    assert "cleared 3 kept outputs" in capsys.readouterr().out
    assert OutputCache(cache_path(etl_home)).entries() == []


def test_a_resolved_secret_never_reaches_the_cache_or_the_store(
    etl_home: Path, lake: Path, api: CountingApi, token: str
) -> None:
    p = _pipeline(etl_home, api)
    p.run({"min_total": 0}, cache=True)
    p.run({"min_total": 5}, cache=True)
    p.close()

    files = [f for f in (etl_home / ".etl_nb").rglob("*") if f.is_file()]
    assert any(f.suffix == ".duckdb" for f in files)
    for f in files:
        assert token.encode() not in f.read_bytes(), f


def test_show_prints_why_each_step_ran(
    etl_home: Path, lake: Path, api: CountingApi, token: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _pipeline(etl_home, api).run(PARAMS, cache=True)
    second = _pipeline(etl_home, api).run({"min_total": 1}, cache=True)

    assert main(["show", second.run_id]) == 0
    out = capsys.readouterr().out
    assert "why" in out
    assert "parameter min_total changed (0 → 1)" in out
    assert "reused (unchanged since run" in out
    assert main(["show", second.run_id, "--json"]) == 0
    steps: list[dict[str, Any]] = json.loads(capsys.readouterr().out)["steps"]
    assert {s["step"]: s["detail"]["decision"] for s in steps}["orders"] == "reused"


def test_the_run_table_of_a_notebook_has_a_why_column(
    etl_home: Path, lake: Path, api: CountingApi, token: str
) -> None:
    _pipeline(etl_home, api).run(PARAMS, cache=True)
    second = _pipeline(etl_home, api).run(PARAMS, cache=True)

    bundle = run_bundle(second)

    assert "why" in bundle["text/plain"]
    assert "reused (unchanged since run" in bundle["text/plain"]
    assert "skipped (input and target unchanged since run" in bundle["text/html"]
    assert "reused (unchanged since run" in str(second)
