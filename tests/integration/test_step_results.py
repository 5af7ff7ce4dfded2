"""One StepResult from the engine to the API to the store, and one rule for a run's status."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from etl_nb import Pipeline, StepResult
from etl_nb.results import run_status
from etl_nb.store import RunRecorder, RunStore


def test_a_run_fails_when_it_ended_with_an_error_or_any_step_failed() -> None:
    ok = StepResult("orders", "extract", "success", rows=3)
    warned = StepResult("check:orders", "check", "warned")
    broken = StepResult("load:orders", "load", "failed", error="boom")
    assert run_status([ok, warned]) == "success"
    assert run_status([ok, broken]) == "failed"
    assert run_status([ok], failed=True) == "failed"


def test_the_api_and_the_store_give_the_same_step_result_with_its_detail(tmp_path: Path) -> None:
    pl.DataFrame({"id": [1, 2, 2]}).write_csv(tmp_path / "orders.csv")
    p = Pipeline("results", base_dir=tmp_path, store=f"sqlite:///{tmp_path / 'store.db'}")
    p.connect("lake", ".")
    p.extract("orders", source="lake", path="orders.csv")
    p.check("orders", [{"unique": ["id"]}], warn=True)
    result = p.run()
    check = result.steps["check:orders"]
    assert check.status == "warned"
    assert check.detail is not None
    assert check.detail["failures"][0]["rule"] == "unique(id)"
    record = p.store.get_run(result.run_id)
    assert record is not None
    assert [s.step for s in record.steps] == list(result.steps)
    assert next(s for s in record.steps if s.step == "check:orders") == check


def test_a_run_inside_an_outer_recorded_run_adds_its_steps_and_leaves_it_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RunStore(f"sqlite:///{tmp_path / 'store.db'}")
    outer = RunRecorder.start(store, "nb", {})
    monkeypatch.setenv("ETL_NB_RUN_ID", outer.run_id)
    pl.DataFrame({"id": [1]}).write_csv(tmp_path / "orders.csv")
    p = Pipeline("nb", base_dir=tmp_path, store=store)
    p.connect("lake", ".")
    p.extract("orders", source="lake", path="orders.csv")
    result = p.run()
    assert result.run_id == outer.run_id
    record = store.get_run(outer.run_id)
    assert record is not None
    assert record.status == "running"
    assert [s.step for s in record.steps] == ["orders"]
