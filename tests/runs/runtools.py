"""Helpers for the runs tests: the ``etl-nb`` command, notebooks, waiting for a run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from etl_nb.store.queue import RunQueue

ETL_NB = str(Path(sys.executable).parent / "etl-nb")
PG_URL = os.environ.get("ETL_NB_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("ETL_NB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def write_notebook(path: Path, body: str, parameters: str = "") -> Path:
    """A notebook: a cell tagged ``parameters`` (when given), then ``body`` as one code cell."""
    nb = nbformat.v4.new_notebook()
    cells = []
    if parameters:
        params = nbformat.v4.new_code_cell(parameters)
        params.metadata["tags"] = ["parameters"]
        cells.append(params)
    nb.cells = [*cells, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def run_etl_nb(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """The installed ``etl-nb`` command, run as a user would."""
    return subprocess.run(
        [ETL_NB, *args],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=timeout,
    )


def wait_for(run_id: str, statuses: tuple[str, ...] = ("success", "failed"), seconds: float = 120) -> str:
    """The run's status once it is one of ``statuses`` (polling the store)."""
    queue = RunQueue()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = queue.status(run_id)
        if status in statuses:
            return status
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} stayed {queue.status(run_id)}")
