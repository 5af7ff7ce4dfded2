"""A run is a success only if every step ran, also a terminal transform nobody reads."""

from __future__ import annotations

from pathlib import Path

from etl_nb import Pipeline


def _pipeline(tmp_path: Path) -> Pipeline:
    (tmp_path / "orders.csv").write_text("id,code\n1,10\n2,x7\n")
    p = Pipeline("terminal", base_dir=tmp_path)
    p.connect("lake", ".")
    p.extract("orders", source="lake", path="orders.csv", options={"types": {"code": "VARCHAR"}})
    return p


def test_a_terminal_transform_that_fails_when_it_runs_fails_the_run(tmp_path: Path) -> None:
    p = _pipeline(tmp_path)
    p.transform("codes", sql="SELECT id, CAST(code AS INTEGER) AS code FROM orders")
    result = p.run()
    assert result.status == "failed"
    assert result.steps["codes"].status == "failed"
    assert result.error is not None
    assert "x7" in result.error


def test_a_terminal_transform_with_a_bad_column_fails_the_run(tmp_path: Path) -> None:
    p = _pipeline(tmp_path)
    p.transform("codes", sql="SELECT id, cod FROM orders")
    result = p.run()
    assert result.status == "failed"
    assert result.error is not None
    assert "SQL error in transform 'codes'" in result.error


def test_a_terminal_transform_is_executed_and_counted(tmp_path: Path) -> None:
    p = _pipeline(tmp_path)
    p.transform("codes", sql="SELECT id FROM orders WHERE id > 1")
    result = p.run().raise_for_status()
    assert result.steps["codes"].rows == 1
    assert result.steps["orders"].rows == 2
    assert p.session.objects["codes"] == "table"


def test_a_failed_first_run_leaves_no_folder_in_a_file_target(tmp_path: Path) -> None:
    p = _pipeline(tmp_path)
    p.load("orders", to="lake", path="out/parts/orders.parquet", mode="append")
    p.load("orders", to="lake", path="out2/orders.csv")
    # Fails after the loads are staged (declared later, so it runs later).
    p.transform("codes", sql="SELECT id, CAST(code AS INTEGER) AS code FROM orders")
    result = p.run()
    assert result.status == "failed"
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "out2").exists()
