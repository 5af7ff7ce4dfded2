"""Dry-run loads into files: counts of what the load would do, and not a byte written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest

from etl_nb import Pipeline

STEP_SQL = """
SELECT * FROM (VALUES
  (3, 30.0, 'paid'), (4, 41.0, 'open'), (5, 55.0, 'paid'),
  (6, 60.0, 'open'), (7, 70.0, 'open'), (8, 80.0, 'open')
) AS v(id, amount, status)
"""
TARGET = pl.DataFrame(
    {
        "id": [1, 2, 3, 4, 5],
        "amount": [10.0, 20.0, 30.0, 40.0, 50.0],
        "status": ["open", "open", "paid", "open", "open"],
    }
)
EXPECTED_MERGE = {"inserted": 3, "updated": 2, "unchanged": 1, "changed_columns": {"amount": 2, "status": 1}}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write(path: Path) -> None:
    if path.suffix == ".csv":
        TARGET.write_csv(path)
    else:
        TARGET.write_parquet(path)


def _run(tmp_path: Path, target: str, mode: str, *, dry: bool) -> dict[str, object]:
    p = Pipeline("dry_files", base_dir=tmp_path, store=f"sqlite:///{tmp_path / 'store.db'}")
    try:
        p.connect("lake", str(tmp_path))
        p.transform("changes", sql=STEP_SQL)
        key = ["id"] if mode == "merge" else None
        p.load("changes", to="lake", path=target, mode=mode, key=key, dry_run=dry)  # type: ignore[arg-type]
        run = p.run().raise_for_status()
        (load,) = [s for s in run.steps.values() if s.kind == "load"]
        return dict(load.detail or {})
    finally:
        p.close()


@pytest.mark.parametrize("target", ["out.parquet", "out.csv"])
def test_file_merge_dry_run_counts_what_the_real_merge_then_does_and_leaves_the_file_alone(
    tmp_path: Path, target: str
) -> None:
    path = tmp_path / target
    _write(path)
    before = _digest(path)
    assert _run(tmp_path, target, "merge", dry=True) == {"dry_run": True, **EXPECTED_MERGE}
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert _run(tmp_path, target, "merge", dry=False) == EXPECTED_MERGE
    reader = pl.read_csv if target.endswith(".csv") else pl.read_parquet
    merged = reader(path).sort("id")
    assert merged["id"].to_list() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert merged["amount"].to_list() == [10.0, 20.0, 30.0, 41.0, 55.0, 60.0, 70.0, 80.0]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("replace", {"rows_before": 5, "rows_after": 6}),
        ("append", {"rows_added": 6, "rows_before": 5, "rows_after": 11}),
    ],
)
def test_file_replace_and_append_dry_runs_report_rows_and_write_nothing(
    tmp_path: Path, mode: str, expected: dict[str, int]
) -> None:
    path = tmp_path / "out.csv"
    _write(path)
    before = _digest(path)
    assert _run(tmp_path, "out.csv", mode, dry=True) == {"dry_run": True, **expected}
    assert _digest(path) == before


def test_a_dry_run_into_a_file_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    detail = _run(tmp_path, "new/out.parquet", "replace", dry=True)
    assert detail == {"dry_run": True, "rows_before": 0, "rows_after": 6}
    assert not (tmp_path / "new" / "out.parquet").exists()
