"""Queued runs: submit_run answers at once, one claim wins, leases expire into 'worker lost', timeouts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from runtools import ETL_NB, wait_for

from etl_nb.runs import submit_run
from etl_nb.runs.executor import execute_claimed
from etl_nb.runs.submit import queue_run
from etl_nb.store import RunStore

Run = subprocess.CompletedProcess[str]


def test_submit_run_answers_at_once_and_a_local_executor_records_the_result(
    project: Path, notebook: Callable[..., Path]
) -> None:
    nb = notebook(project / "hello.ipynb", "open(f'out-{n}.txt', 'w').write('hi')", "n = 1")

    run_id = submit_run(nb, {"n": "7"}, trigger="api")

    assert RunStore().get_run(run_id).status in ("queued", "running")  # type: ignore[union-attr]
    assert wait_for(run_id) == "success"
    record = RunStore().get_run(run_id)
    assert record is not None
    assert record.trigger == "api"
    assert record.params == {"n": 7}
    assert (project / "out-7.txt").read_text() == "hi"


def test_a_second_claim_of_one_run_does_nothing(project: Path, notebook: Callable[..., Path]) -> None:
    nb = notebook(project / "once.ipynb", "open('count.txt', 'a').write('x')")
    run_id = queue_run(nb, {}, trigger="api")

    first = execute_claimed(run_id)
    second = execute_claimed(run_id)  # a redelivered message

    assert first is not None
    assert first.status == "success"
    assert second is None
    assert (project / "count.txt").read_text() == "x"


def test_a_killed_etl_nb_run_is_marked_worker_lost_by_the_next_runs(
    project: Path, notebook: Callable[..., Path], etl_nb: Callable[..., Run]
) -> None:
    nb = notebook(project / "slow.ipynb", "import time\nopen('started', 'w').write('1')\ntime.sleep(120)")
    running = subprocess.Popen(
        [ETL_NB, "run", str(nb)],
        cwd=project,
        env=os.environ.copy(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 90
    while not (project / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(running.pid, signal.SIGKILL)
    running.wait()
    time.sleep(3.5)  # one lease period (ETL_NB_LEASE_SECONDS=3)

    listed = json.loads(etl_nb("runs", "--json", cwd=project).stdout)

    assert [r["status"] for r in listed] == ["failed"]
    assert listed[0]["error"].startswith("worker lost")


def test_a_run_past_its_timeout_has_its_kernel_killed_and_fails_saying_so(
    project: Path, notebook: Callable[..., Path], etl_nb: Callable[..., Run]
) -> None:
    nb = notebook(project / "forever.ipynb", "import time\ntime.sleep(600)")

    done = etl_nb("run", str(nb), "--timeout", "3s", cwd=project)

    assert done.returncode == 1
    run = json.loads(etl_nb("runs", "--json", cwd=project).stdout)[0]
    assert run["status"] == "failed"
    assert run["error"] == "timed out after 3s: the kernel was stopped."
