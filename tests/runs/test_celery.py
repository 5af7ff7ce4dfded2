"""The Celery backend with the real Redis and real worker processes: the run row is the truth."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from runtools import ETL_NB, REDIS_URL, wait_for

from etl_nb.runs.scheduler import Scheduler
from etl_nb.runs.submit import dispatch, queue_run
from etl_nb.store import RunRecord, RunStore
from etl_nb.store.queue import RunQueue
from etl_nb.store.schedules import ScheduleStore

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

Run = subprocess.CompletedProcess[str]


@pytest.fixture
def celery_env(project: Path, pg_store: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The broker, a queue of the test's own, the store on PostgreSQL."""
    monkeypatch.setenv("ETL_NB_BROKER_URL", REDIS_URL)
    monkeypatch.setenv("ETL_NB_CELERY_QUEUE", f"etl_nb_test_{uuid.uuid4().hex[:8]}")
    return project


@pytest.fixture
def workers(celery_env: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two ``etl-nb worker`` processes (each its own process group), stopped after the test."""
    started = [
        subprocess.Popen(
            [ETL_NB, "worker", "--concurrency", "1"],
            cwd=celery_env,
            env=os.environ.copy(),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=open(celery_env / f"worker{i}.log", "ab"),  # noqa: SIM115
        )
        for i in range(2)
    ]
    yield started
    for worker in started:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def test_run_with_the_celery_backend_is_executed_by_a_worker(
    celery_env: Path,
    workers: list[subprocess.Popen[bytes]],
    notebook: Callable[..., Path],
    etl_nb: Callable[..., Run],
) -> None:
    nb = notebook(celery_env / "hello.ipynb", "import os\nopen('pid', 'w').write(str(os.getppid()))", "n = 1")

    done = etl_nb("run", str(nb), "--backend", "celery", "-p", "n", "2", cwd=celery_env)

    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = RunStore().list_runs()
    assert run.status == "success"
    assert run.params == {"n": 2}
    executor_pid = int((celery_env / "pid").read_text())
    assert executor_pid not in (os.getpid(), *(w.pid for w in workers))  # a worker's pool process


def test_the_scheduler_with_the_celery_backend_queues_slots_for_the_workers(
    celery_env: Path, workers: list[subprocess.Popen[bytes]], notebook: Callable[..., Path]
) -> None:
    nb = notebook(celery_env / "tick.ipynb", "open('ticked', 'w').write(scheduled_for)", 'scheduled_for = ""')
    slot = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)
    ScheduleStore().add(str(nb), "0 * * * *", pipeline="tick", since=slot - dt.timedelta(hours=1))

    class At:
        def now(self) -> dt.datetime:
            return slot + dt.timedelta(seconds=1)

        def sleep(self, seconds: float, stop: object) -> None:
            pass

    (outcome,) = Scheduler(backend="celery", clock=At()).tick()

    assert outcome.run_id is not None
    assert wait_for(outcome.run_id) == "success"
    assert (celery_env / "ticked").read_text() == "2026-06-01T09:00:00+00:00"


def test_a_redelivered_message_for_a_claimed_run_does_nothing(
    celery_env: Path, workers: list[subprocess.Popen[bytes]], notebook: Callable[..., Path]
) -> None:
    nb = notebook(celery_env / "once.ipynb", "import time\nopen('count', 'a').write('x')\ntime.sleep(1)")
    run_id = queue_run(nb, {}, trigger="api", backend="celery")

    dispatch(run_id, "celery")
    dispatch(run_id, "celery")  # the same run twice, as a redelivery would

    assert wait_for(run_id) == "success"
    time.sleep(2)  # give the second message time to reach the other worker
    assert (celery_env / "count").read_text() == "x"


def test_a_worker_killed_mid_run_leaves_the_run_worker_lost_and_retried(
    celery_env: Path,
    workers: list[subprocess.Popen[bytes]],
    notebook: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ETL_NB_RETRY_DELAY", "0.5")
    body = (
        "import os, time\n"
        "open(f'started-{os.getppid()}', 'w').write('1')\n"
        "while os.path.exists('hold'):\n    time.sleep(0.2)\n"
        "open('finished', 'w').write('1')"
    )
    nb = notebook(celery_env / "held.ipynb", body)
    (celery_env / "hold").write_text("")
    run_id = queue_run(nb, {}, trigger="schedule", backend="celery", retries=1)
    dispatch(run_id, "celery")
    deadline = time.monotonic() + 120
    while not list(celery_env.glob("started-*")):
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.2)
    owner = RunQueue().job(run_id).lease_owner  # type: ignore[union-attr]
    pool_pid = int(owner.split(":")[1])  # type: ignore[union-attr]
    victim = next(w for w in workers if pool_pid in _children(w.pid))

    os.killpg(victim.pid, signal.SIGKILL)
    (celery_env / "hold").unlink()
    lost = _wait_status(run_id, "failed", seconds=3 * 3)  # within one lease period (3 s), plus the reaper's

    assert lost.startswith("worker lost")
    retries = _retries_of(run_id, seconds=10)  # the reaper queues it after marking the run failed
    assert len(retries) == 1
    assert wait_for(retries[0].id) == "success"  # the surviving worker ran the retry
    assert (celery_env / "finished").exists()


def _children(pid: int) -> list[int]:
    import psutil

    return [c.pid for c in psutil.Process(pid).children(recursive=True)]


def _retries_of(run_id: str, seconds: float) -> list[RunRecord]:
    """The runs other than ``run_id`` once there is one (the retry), or none after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        others = [r for r in RunStore().list_runs() if r.id != run_id]
        if others or time.monotonic() > deadline:
            return others
        time.sleep(0.2)


def _wait_status(run_id: str, status: str, seconds: float) -> str:
    """The run's error once the store says ``status`` (read without reaping: the workers must)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        record = RunStore().get_run(run_id)
        if record is not None and record.status == status:
            return record.error or ""
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} is {RunQueue().status(run_id)}, not {status}")


def test_celery_refuses_a_timeout_above_the_visibility_timeout(
    celery_env: Path, notebook: Callable[..., Path], etl_nb: Callable[..., Run]
) -> None:
    nb = notebook(celery_env / "x.ipynb", "x = 1")

    done = etl_nb("run", str(nb), "--backend", "celery", "--timeout", "2d", cwd=celery_env)

    assert done.returncode == 2
    assert "must be shorter than ETL_NB_VISIBILITY_TIMEOUT" in done.stderr
    assert json.loads(etl_nb("runs", "--json", cwd=celery_env).stdout) == []
