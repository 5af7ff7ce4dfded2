"""Loads are atomic: a run that fails anywhere leaves every target byte-for-byte as it was."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest

from etl_nb import Pipeline
from etl_nb.connectors import WriteRequest, register
from etl_nb.connectors.files import FilesConnector, StagedFile
from etl_nb.errors import ConnectorError
from etl_nb.store import RunStore


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden temp files included) with a hash of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    folder = tmp_path / "lake"
    (folder / "out" / "appended.parquet").mkdir(parents=True)
    pl.DataFrame({"id": [1, 2, 3], "amount": [10.0, 20.0, 30.0]}).write_csv(folder / "orders.csv")
    old = pl.DataFrame({"id": [7], "amount": [70.0]})
    old.write_parquet(folder / "out" / "orders.parquet")
    old.write_csv(folder / "out" / "orders.csv")
    old.write_parquet(folder / "out" / "merged.parquet")
    old.write_parquet(folder / "out" / "appended.parquet" / "part-old.parquet")
    return folder


def _pipeline(lake: Path, target_kind: str = "lake") -> Pipeline:
    p = Pipeline("atomic", base_dir=lake)
    p.connect("lake", ".")
    if target_kind != "lake":
        p.connect("target", ".", type=target_kind)
    p.extract("orders", source="lake", path="orders.csv")
    target = "lake" if target_kind == "lake" else "target"
    p.load("orders", to=target, path="out/orders.parquet", mode="replace")
    p.load("orders", to=target, path="out/orders.csv", mode="append")
    p.load("orders", to=target, path="out/merged.parquet", mode="merge", key="id")
    p.load("orders", to=target, path="out/appended.parquet", mode="append")
    return p


def _assert_run_changed_nothing(p: Pipeline, lake: Path, before: dict[str, str]) -> None:
    result = p.run()
    assert result.status == "failed"
    assert _snapshot(lake) == before  # same files, same bytes, no temp file left
    assert result.rows == 0
    record = RunStore().get_run(result.run_id)
    assert record is not None
    assert record.status == "failed"
    assert not record.rows


def test_a_python_step_that_raises_after_the_loads_are_staged_leaves_every_target(lake: Path) -> None:
    p = _pipeline(lake)
    p.transform("later", python="raise RuntimeError('boom')")
    before = _snapshot(lake)
    _assert_run_changed_nothing(p, lake, before)


def test_a_check_that_fails_after_the_loads_are_staged_leaves_every_target(lake: Path) -> None:
    p = _pipeline(lake)
    p.transform("summary", sql="SELECT count(*) AS n FROM orders")
    p.check("summary", [{"expression": "n > 100"}])
    before = _snapshot(lake)
    result = p.run()
    assert result.steps["check:summary"].status == "failed"
    assert _snapshot(lake) == before
    loads = [s for name, s in result.steps.items() if name.startswith("load:")]
    assert len(loads) == 4
    assert all(s.status == "skipped" and s.rows is None for s in loads)
    assert all("not committed" in (s.error or "") for s in loads)


def test_a_failed_write_leaves_the_target_and_no_temp_file(lake: Path) -> None:
    p = Pipeline("atomic", base_dir=lake)
    p.connect("lake", ".")
    p.extract("orders", source="lake", path="orders.csv")
    # The cast fails while DuckDB writes the file: the COPY itself dies mid-write.
    p.transform(
        "bad", sql="SELECT id, (CASE WHEN id = 3 THEN 'x' ELSE id::VARCHAR END)::INTEGER AS y FROM orders"
    )
    p.load("bad", to="lake", path="out/orders.parquet", mode="replace")
    before = _snapshot(lake)
    result = p.run()
    assert result.status == "failed"
    assert result.error is not None
    assert _snapshot(lake) == before


@register("files_commit_fails")
class _CommitFailsConnector(FilesConnector):
    """Files, except that putting a staged file in place fails (a full disk, a lost mount)."""

    def write(self, request: WriteRequest) -> StagedFile:
        staged = super().write(request)
        return _FailingCommit(staged.staging, staged.target, staged.rows)


class _FailingCommit(StagedFile):
    def commit(self) -> None:
        raise OSError(28, "No space left on device")


def test_a_commit_that_fails_leaves_the_target_and_no_temp_file(lake: Path) -> None:
    p = _pipeline(lake, target_kind="files_commit_fails")
    before = _snapshot(lake)
    result = p.run()
    assert result.status == "failed"
    assert result.error is not None
    assert "No space left on device" in result.error
    assert "The target was left as it was." in result.error
    assert result.rows == 0
    assert "load:orders:target:out/orders.parquet" in [
        n for n, s in result.steps.items() if s.status == "failed"
    ]
    assert _snapshot(lake) == before


@register("files_write_fails")
class _WriteFailsConnector(FilesConnector):
    """Files, except that the write dies after half the rows are staged."""

    def write(self, request: WriteRequest) -> StagedFile:
        staged = super().write(request)
        try:
            raise ConnectorError("Connection reset while writing", step=request.load.step)
        finally:
            staged.abort()


def test_a_write_that_fails_midway_leaves_the_target(lake: Path) -> None:
    p = _pipeline(lake, target_kind="files_write_fails")
    before = _snapshot(lake)
    result = p.run()
    assert result.error == "Connection reset while writing"
    assert _snapshot(lake) == before


def test_a_failed_run_keeps_the_old_target_readable_and_a_good_run_replaces_it(lake: Path) -> None:
    p = _pipeline(lake)
    p.transform("later", python="orders.filter(pl.col('id') > threshold)")
    assert p.run().status == "failed"  # no threshold: fails after staging
    assert pl.read_parquet(lake / "out" / "orders.parquet")["id"].to_list() == [7]
    result = p.run(params={"threshold": 0}).raise_for_status()
    assert result.rows == 12
    assert pl.read_parquet(lake / "out" / "orders.parquet")["id"].to_list() == [1, 2, 3]
    assert pl.read_csv(lake / "out" / "orders.csv")["id"].to_list() == [7, 1, 2, 3]
    assert sorted(pl.read_parquet(lake / "out" / "merged.parquet")["id"].to_list()) == [1, 2, 3, 7]
    assert len(list((lake / "out" / "appended.parquet").iterdir())) == 2
    assert not [f for f in _snapshot(lake) if Path(f).name.startswith(".")]
