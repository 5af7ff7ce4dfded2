"""A run killed mid-load leaves no debris and no run stuck in ``running`` (issue 10, item 9).

A real process runs a pipeline and is SIGKILLed after its load is staged,
before the staged file is renamed into place. The next time the store is
opened the run is marked failed (``process died``), and the next load to the
folder sweeps the dead run's staging file, but never a live run's.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from etl_nb import Pipeline
from etl_nb.store import PROCESS_DIED, RunStore, host_name

KILLED_MID_LOAD = textwrap.dedent(
    """
    import os, signal, sys
    from etl_nb import Pipeline
    from etl_nb.connectors import files

    def die(self):  # the load is staged; the process dies before putting it in place
        os.kill(os.getpid(), signal.SIGKILL)

    files.StagedFile.commit = die
    p = Pipeline("crashy", base_dir=sys.argv[1])
    p.connect("lake", ".")
    p.extract("rows", source="lake", path="in.csv")
    p.load("rows", to="lake", path="out/rows.parquet", mode="replace")
    p.run()
    """
)


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    folder = tmp_path / "lake"
    folder.mkdir()
    (folder / "in.csv").write_text("id,name\n1,a\n2,b\n")
    return folder


def _run_and_kill(lake: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", KILLED_MID_LOAD, str(lake)], env=os.environ.copy(), check=False, timeout=120
    )
    assert done.returncode == -signal.SIGKILL


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_run_whose_process_died_is_marked_failed_when_the_store_is_next_opened(lake: Path) -> None:
    _run_and_kill(lake)
    [record] = RunStore().list_runs()
    assert record.pipeline == "crashy"
    assert record.status == "failed"
    assert record.error is not None
    assert record.error.startswith(PROCESS_DIED)
    assert RunStore().get_run(record.id).status == "failed"  # type: ignore[union-attr]


def test_the_next_load_to_the_folder_sweeps_a_dead_runs_staging_file(lake: Path) -> None:
    _run_and_kill(lake)
    [debris] = _hidden(lake / "out")
    [record] = RunStore().list_runs()
    assert record.id in debris  # staging is named by its run

    p = Pipeline("tidy", base_dir=lake)
    p.connect("lake", ".")
    p.extract("rows", source="lake", path="in.csv")
    p.load("rows", to="lake", path="out/other.csv", mode="replace")
    assert p.run().status == "success"
    assert _hidden(lake / "out") == []
    assert sorted(os.listdir(lake / "out")) == ["other.csv"]


def test_a_live_runs_staging_file_is_not_swept(lake: Path) -> None:
    (lake / "out").mkdir()
    # The parent process (pytest's runner) is alive: its run is still writing.
    live = lake / "out" / f".rows.parquet.20261201T000000-0123abcd.{os.getppid()}.{host_name()}.0123abcd.tmp"
    live.write_text("half a file")
    p = Pipeline("tidy", base_dir=lake)
    p.connect("lake", ".")
    p.extract("rows", source="lake", path="in.csv")
    p.load("rows", to="lake", path="out/other.csv", mode="replace")
    assert p.run().status == "success"
    assert live.exists()


@pytest.mark.parametrize("command", ["runs", "show"])
def test_etl_nb_runs_and_show_report_a_dead_run_as_failed(lake: Path, command: str) -> None:
    _run_and_kill(lake)
    with sqlite3.connect(os.environ["ETL_NB_STORE_URL"].removeprefix("sqlite:///")) as con:
        [(run_id, status)] = con.execute("SELECT id, status FROM etl_runs").fetchall()
    assert status == "running"  # nothing has opened the store since the kill
    args = [command, "--json"] if command == "runs" else [command, run_id, "--json"]
    shown = subprocess.run(
        [sys.executable, "-m", "etl_nb.cli", *args], capture_output=True, text=True, check=True, timeout=120
    )
    record = json.loads(shown.stdout)
    record = record[0] if command == "runs" else record
    assert record["status"] == "failed"
    assert record["error"].startswith(PROCESS_DIED)
