"""The run store: every run recorded, found by id prefix, safe under concurrent writers."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from etl_nb import Pipeline
from etl_nb.errors import EtlError
from etl_nb.store import RunStore, default_store_url


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    folder = tmp_path / "lake"
    folder.mkdir()
    pl.DataFrame({"id": [1, 2, 3], "amount": [5.0, -1.0, 7.0]}).write_csv(folder / "orders.csv")
    return folder


def _pipeline(lake: Path, name: str = "store_test", **options: object) -> Pipeline:
    p = Pipeline(name, base_dir=lake, **options)  # type: ignore[arg-type]
    p.connect("lake", ".")
    p.extract("orders", source="lake", path="orders.csv")
    p.transform("big", sql="SELECT * FROM orders WHERE amount > {{ floor }}")
    p.load("big", to="lake", path="out/big.csv", mode="replace")
    return p


def _sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def _integrity(url: str) -> str:
    with sqlite3.connect(_sqlite_path(url)) as con:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])


def test_a_successful_run_is_recorded_with_params_and_steps(lake: Path) -> None:
    result = _pipeline(lake).run(params={"floor": 0})
    record = RunStore().get_run(result.run_id)
    assert record is not None
    assert (record.pipeline, record.status, record.params, record.error) == (
        "store_test",
        "success",
        {"floor": 0},
        None,
    )
    assert record.rows == 2
    assert record.started_at <= (record.finished_at or record.started_at)
    assert record.seconds is not None
    assert record.seconds >= 0
    assert [(s.step, s.kind, s.status) for s in record.steps] == [
        ("orders", "extract", "success"),
        ("big", "transform", "success"),
        ("load:big:lake:out/big.csv", "load", "success"),
    ]
    load = record.steps[-1]
    assert load.rows == 2
    assert load.seconds is not None
    assert load.seconds >= 0
    assert record.to_dict()["steps"][2]["rows"] == 2


def test_a_failed_run_is_recorded_with_its_error_on_the_run_and_the_step(lake: Path) -> None:
    p = _pipeline(lake)
    p.check("big", [{"expression": "amount > 6"}])
    result = p.run(params={"floor": 0})
    record = RunStore().get_run(result.run_id)
    assert record is not None
    assert record.status == "failed"
    assert record.error == result.error
    assert record.error is not None
    assert "1 of 2 rows break 'amount > 6'" in record.error
    statuses = {s.step: s.status for s in record.steps}
    assert statuses == {
        "orders": "success",
        "big": "success",
        "check:big": "failed",
        "load:big:lake:out/big.csv": "skipped",
    }
    failed = next(s for s in record.steps if s.status == "failed")
    assert failed.error == "\n".join(record.error.splitlines())


def test_a_run_that_cannot_start_is_recorded_too(lake: Path) -> None:
    p = _pipeline(lake)
    p.transform("loop", sql="SELECT * FROM loop2")
    p.transform("loop2", sql="SELECT * FROM loop")
    result = p.run(params={"floor": 0})
    assert result.status == "failed"
    record = RunStore().get_run(result.run_id)
    assert record is not None
    assert record.status == "failed"
    assert record.error is not None
    assert "cycle" in record.error


def test_get_run_finds_a_run_by_a_unique_prefix(lake: Path) -> None:
    store = RunStore()
    store.start_run("abc123def", "p", {})
    store.start_run("abc999xyz", "p", {})
    found = store.get_run("abc1")
    assert found is not None
    assert found.id == "abc123def"
    assert store.get_run("abc") is None  # two runs match: ambiguous
    assert store.get_run("zzz") is None
    assert store.get_run("abc_") is None  # '_' is a character, not a LIKE wildcard


def test_list_runs_is_newest_first_and_filters_by_pipeline(lake: Path) -> None:
    first = _pipeline(lake, "one").run(params={"floor": 0})
    second = _pipeline(lake, "two").run(params={"floor": 0})
    third = _pipeline(lake, "one").run(params={"floor": 100})
    store = RunStore()
    assert [r.id for r in store.list_runs()] == [third.run_id, second.run_id, first.run_id]
    assert [r.id for r in store.list_runs(pipeline="one")] == [third.run_id, first.run_id]
    assert [r.id for r in store.list_runs(limit=1)] == [third.run_id]


def test_non_json_parameters_are_stored_as_text(lake: Path) -> None:
    result = _pipeline(lake).run(params={"floor": Decimal("1.5"), "day": dt.date(2026, 1, 2)})
    record = RunStore().get_run(result.run_id)
    assert record is not None
    assert record.params == {"floor": "1.5", "day": "2026-01-02"}


def test_watermarks_keep_their_type(lake: Path) -> None:
    store = RunStore()
    stamp = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    store.set_watermarks("p", "r1", {"a": ("updated_at", stamp), "b": ("day", dt.date(2026, 1, 2))})
    store.set_watermarks("p", "r1", {"c": ("amount", Decimal("10.25")), "d": ("id", 42)})
    assert store.watermark("p", "a") == stamp
    assert store.watermark("p", "b") == dt.date(2026, 1, 2)
    assert store.watermark("p", "c") == Decimal("10.25")
    assert store.watermark("p", "d") == 42
    assert store.watermark("p", "missing") is None
    store.set_watermarks("p", "r2", {"d": ("id", 43)})
    assert store.watermark("p", "d") == 43


def test_the_store_url_comes_from_etl_nb_store_url(
    lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere' / 'runs.db'}"
    monkeypatch.setenv("ETL_NB_STORE_URL", url)
    result = _pipeline(lake).run(params={"floor": 0})
    assert default_store_url() == url
    assert (tmp_path / "elsewhere" / "runs.db").is_file()
    assert RunStore(url).get_run(result.run_id) is not None


def test_the_default_store_lives_under_etl_nb_home(
    lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "project"
    monkeypatch.delenv("ETL_NB_STORE_URL")
    monkeypatch.setenv("ETL_NB_HOME", str(home))
    result = _pipeline(lake).run(params={"floor": 0})
    database = home / ".etl_nb" / "etl_nb.db"
    assert default_store_url() == f"sqlite:///{database.resolve()}"
    assert database.is_file()
    assert RunStore().get_run(result.run_id) is not None


def test_without_etl_nb_home_the_store_is_in_the_project_of_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ETL_NB_STORE_URL")
    monkeypatch.delenv("ETL_NB_HOME")
    (tmp_path / ".etl_nb").mkdir()
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert default_store_url() == f"sqlite:///{(tmp_path / '.etl_nb' / 'etl_nb.db').resolve()}"


def test_an_unreachable_store_is_a_clear_error_without_the_password() -> None:
    with pytest.raises(EtlError) as info:
        RunStore("postgresql://alice:store-pw-123@127.0.0.1:1/runs")
    message = str(info.value)
    assert message.startswith("Cannot open the run store at postgresql://alice:***@127.0.0.1:1/runs")
    assert "Check ETL_NB_STORE_URL" in message
    assert "store-pw-123" not in message


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("sqlite:////proc/no/such/folder/runs.db", "No such file or directory"),
        ("not a url", "Could not parse SQLAlchemy URL"),
    ],
)
def test_a_bad_store_url_is_a_clear_error(url: str, detail: str) -> None:
    with pytest.raises(EtlError) as info:
        RunStore(url)
    assert str(info.value).startswith(f"Cannot open the run store at {url}: ")
    assert detail in str(info.value)


def test_two_threads_running_at_once_record_every_run(lake: Path, store_url: str) -> None:
    errors: list[BaseException] = []
    ids: list[str] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        try:
            p = _pipeline(lake, name)
            p.load("big", to="lake", path=f"out/{name}.csv", mode="replace")
            for floor in range(5):
                result = p.run(params={"floor": floor})
                with lock:
                    ids.append(result.run_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"thread_{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    store = RunStore()
    runs = store.list_runs(limit=100)
    assert sorted(r.id for r in runs) == sorted(ids)
    assert len(ids) == 10
    assert all(r.status == "success" and r.finished_at is not None for r in runs)
    assert all(len(store.get_run(i).steps) == 4 for i in ids)  # type: ignore[union-attr]
    assert _integrity(store_url) == "ok"


_WORKER = textwrap.dedent(
    """
    import sys
    from etl_nb import Pipeline

    name, lake = sys.argv[1], sys.argv[2]
    p = Pipeline(name, base_dir=lake)
    p.connect("lake", ".")
    p.extract("orders", source="lake", path="orders.csv")
    p.transform("big", sql="SELECT * FROM orders WHERE amount > {{ floor }}")
    p.load("big", to="lake", path=f"out/{name}.csv", mode="replace")
    for floor in range(8):
        p.run(params={"floor": floor}).raise_for_status()
    """
)


def test_two_processes_writing_one_sqlite_store_record_every_run(lake: Path, store_url: str) -> None:
    env = {**os.environ, "ETL_NB_STORE_URL": store_url}
    RunStore(store_url)  # create the tables first, as the first run on a project would
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, f"process_{i}", str(lake)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=120)
        assert worker.returncode == 0, stderr
    runs = RunStore(store_url).list_runs(limit=100)
    assert sorted((r.pipeline, r.status) for r in runs) == sorted(
        [("process_0", "success")] * 8 + [("process_1", "success")] * 8
    )
    assert _integrity(store_url) == "ok"
    with sqlite3.connect(_sqlite_path(store_url)) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("SELECT count(*) FROM etl_step_runs").fetchone()[0] == 16 * 3


def test_two_processes_creating_a_new_store_at_once_both_succeed(lake: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh' / 'etl_nb.db'}"
    env = {**os.environ, "ETL_NB_STORE_URL": url}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, f"fresh_{i}", str(lake)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=120)
        assert worker.returncode == 0, stderr
    assert len(RunStore(url).list_runs(limit=100)) == 16
    assert _integrity(url) == "ok"
