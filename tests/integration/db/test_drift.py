"""Schema drift: an extract whose columns changed since its last good run is flagged, or fails the run.

Cases on files and on a real PostgreSQL table: a column added, dropped and
retyped. With ``on_drift="fail"`` the run stops before any load, naming the
change, and the target is left as it was.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from etl_nb import Pipeline
from etl_nb.spec import DriftPolicy


def _files_pipeline(make: Callable[[str], Pipeline], folder: Path, on_drift: DriftPolicy) -> Pipeline:
    p = make("drift_files")
    p.connect("lake", str(folder))
    p.extract("orders", source="lake", path="orders.csv", on_drift=on_drift)
    p.load("orders", to="lake", path="out/orders.parquet", mode="replace")
    return p


@pytest.mark.parametrize(
    ("csv", "drift", "described"),
    [
        (
            "id,amount,note\n1,2.5,x\n",
            {"added": ["note"], "removed": [], "retyped": {}},
            "column added: note",
        ),
        ("id\n1\n", {"added": [], "removed": ["amount"], "retyped": {}}, "column removed: amount"),
        (
            "id,amount\n1,lots\n",
            {"added": [], "removed": [], "retyped": {"amount": ["DOUBLE", "VARCHAR"]}},
            "retyped: amount DOUBLE -> VARCHAR",
        ),
    ],
    ids=["added", "dropped", "retyped"],
)
def test_a_changed_csv_marks_the_extract_warned_naming_the_columns(
    tmp_path: Path,
    make_pipeline: Callable[[str], Pipeline],
    csv: str,
    drift: dict[str, object],
    described: str,
) -> None:
    (tmp_path / "orders.csv").write_text("id,amount\n1,2.5\n")
    first = _files_pipeline(make_pipeline, tmp_path, "warn").run().raise_for_status()
    assert first.steps["orders"].status == "success"
    assert first.steps["orders"].detail == {"columns": {"id": "BIGINT", "amount": "DOUBLE"}}

    (tmp_path / "orders.csv").write_text(csv)
    second = _files_pipeline(make_pipeline, tmp_path, "warn").run().raise_for_status()
    orders = second.steps["orders"]
    assert orders.status == "warned"
    assert orders.detail is not None
    assert orders.detail["drift"] == {"since_run": first.run_id, **drift}
    assert described in (orders.error or "")
    record = make_pipeline("drift_files").store.get_run(second.run_id)
    assert record is not None
    assert record.steps[0].status == "warned"
    assert record.steps[0].detail is not None
    assert record.steps[0].detail["drift"]["since_run"] == first.run_id


def test_a_dropped_column_fails_an_on_drift_fail_run_before_any_load(
    tmp_path: Path, make_pipeline: Callable[[str], Pipeline]
) -> None:
    (tmp_path / "orders.csv").write_text("id,amount\n1,2.5\n")
    _files_pipeline(make_pipeline, tmp_path, "fail").run().raise_for_status()
    written = (tmp_path / "out" / "orders.parquet").read_bytes()

    (tmp_path / "orders.csv").write_text("id\n1\n2\n")
    run = _files_pipeline(make_pipeline, tmp_path, "fail").run()
    assert run.status == "failed"
    assert run.steps["orders"].status == "failed"
    assert "column removed: amount" in (run.error or "")
    assert "--on-drift fail" in (run.error or "")
    (load,) = [s for s in run.steps.values() if s.kind == "load"]
    assert load.status == "skipped"
    assert (tmp_path / "out" / "orders.parquet").read_bytes() == written
    assert pl.read_parquet(tmp_path / "out" / "orders.parquet").columns == ["id", "amount"]


def test_drift_compares_with_the_last_good_run_not_a_failed_one(
    tmp_path: Path, make_pipeline: Callable[[str], Pipeline]
) -> None:
    (tmp_path / "orders.csv").write_text("id,amount\n1,2.5\n")
    good = _files_pipeline(make_pipeline, tmp_path, "fail").run().raise_for_status()
    (tmp_path / "orders.csv").write_text("id\n1\n")
    assert _files_pipeline(make_pipeline, tmp_path, "fail").run().status == "failed"
    again = _files_pipeline(make_pipeline, tmp_path, "fail").run()
    assert again.status == "failed"
    assert f"since run {good.run_id}" in (again.error or "")


def test_the_extract_line_takes_on_drift() -> None:
    from etl_nb.spec import SpecError, parse_cell

    step = parse_cell("extract orders --from lake --on-drift fail", "path: orders.csv")
    assert getattr(step, "on_drift", None) == "fail"
    with pytest.raises(SpecError, match="--on-drift 'stop'"):
        parse_cell("extract orders --from lake --on-drift stop", "path: orders.csv")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("ALTER TABLE {t} ADD COLUMN note TEXT", {"added": ["note"], "removed": [], "retyped": {}}),
        ("ALTER TABLE {t} DROP COLUMN status", {"added": [], "removed": ["status"], "retyped": {}}),
        (
            "ALTER TABLE {t} ALTER COLUMN amount TYPE TEXT",
            {"added": [], "removed": [], "retyped": {"amount": ["DOUBLE", "VARCHAR"]}},
        ),
    ],
    ids=["added", "dropped", "retyped"],
)
def test_a_changed_postgres_table_is_drift_and_fails_an_on_drift_fail_run(
    pg_url: str,
    pg: sa.Engine,
    make_pipeline: Callable[[str], Pipeline],
    tmp_path: Path,
    change: str,
    expected: dict[str, object],
) -> None:
    table = f"drift_{uuid.uuid4().hex[:8]}"
    with pg.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table} (id INTEGER, amount FLOAT, status TEXT)"))
        conn.execute(sa.text(f"INSERT INTO {table} VALUES (1, 2.5, 'open')"))

    def pipeline(on_drift: DriftPolicy) -> Pipeline:
        p = make_pipeline("drift_pg")
        p.connect("shop", pg_url)
        p.connect("lake", str(tmp_path))
        p.extract("orders", source="shop", query=f"SELECT * FROM {table}", on_drift=on_drift)
        p.load("orders", to="lake", path="orders.parquet", mode="replace")
        return p

    first = pipeline("warn").run().raise_for_status()
    with pg.begin() as conn:
        conn.execute(sa.text(change.format(t=table)))

    failed = pipeline("fail").run()
    assert failed.status == "failed"
    assert f"Extract 'orders' changed since run {first.run_id}" in (failed.error or "")

    warned = pipeline("warn").run().raise_for_status()
    assert warned.steps["orders"].status == "warned"
    assert warned.steps["orders"].detail is not None
    assert warned.steps["orders"].detail["drift"] == {"since_run": first.run_id, **expected}

    # A good run with the new columns accepted them: the next run compares with it.
    assert pipeline("fail").run().raise_for_status().steps["orders"].status == "success"
