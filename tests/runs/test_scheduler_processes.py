"""Schedulers as processes: two racing on one PostgreSQL store, one killed mid-run, one stopped by SIGTERM."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from runtools import ETL_NB, wait_for

from etl_nb.runs.scheduler import Scheduler
from etl_nb.runs.submit import queue_run
from etl_nb.store import RunStore
from etl_nb.store.schedules import ScheduleStore
from etl_nb.store.schema import run_jobs, schedule_slots

T0 = dt.datetime(2026, 3, 28, 12, 0, tzinfo=dt.UTC)
ROUNDS = 100


class RoundClock:
    """Round ``r`` is at T0 + r minutes (+ a second): every round makes one new slot due."""

    def __init__(self) -> None:
        self.at = T0

    def now(self) -> dt.datetime:
        return self.at

    def sleep(self, seconds: float, stop: Any) -> None:  # ticks are driven by the test
        pass


def _quick_submit(notebook: Path, params: dict[str, Any], **options: Any) -> str:
    run_id = queue_run(notebook, params, **options)
    RunStore().finish_run(run_id, "success", None)
    return run_id


def _race(store_url: str, barrier: Any, rounds: int) -> None:
    from etl_nb.store.runs import _engines

    for engine in _engines.values():  # a forked child must not share its parent's connections
        engine.dispose(close=False)
    clock = RoundClock()
    scheduler = Scheduler(RunStore(store_url), clock=clock, submit=_quick_submit)
    for r in range(1, rounds + 1):
        clock.at = T0 + dt.timedelta(minutes=r, seconds=1)
        barrier.wait(timeout=60)
        scheduler.tick()


@pytest.mark.postgres
def test_two_schedulers_on_one_postgresql_store_never_start_a_slot_twice(
    project: Path, notebook: Callable[..., Path], pg_store: str
) -> None:
    for name in ("a", "b"):
        nb = notebook(project / f"{name}.ipynb", "x = 1")
        ScheduleStore().add(str(nb), "* * * * *", pipeline=name, since=T0)
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    racers = [context.Process(target=_race, args=(pg_store, barrier, ROUNDS)) for _ in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=240)

    assert [r.exitcode for r in racers] == [0, 0]
    engine = RunStore().engine
    with engine.connect() as conn:
        per_slot = conn.execute(
            sa.select(run_jobs.c.schedule_id, run_jobs.c.scheduled_for, sa.func.count()).group_by(
                run_jobs.c.schedule_id, run_jobs.c.scheduled_for
            )
        ).all()
        claimers = {r[0] for r in conn.execute(sa.select(schedule_slots.c.claimed_by))}
    assert len(per_slot) == 2 * ROUNDS  # every slot of both schedules started...
    assert {count for *_, count in per_slot} == {1}  # ...exactly once
    assert len(claimers) == 2  # and both schedulers won some of them


def _scheduler(project: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [ETL_NB, "scheduler", "--interval", "1s", "--log-format", "json"],
        cwd=project,
        env=os.environ.copy(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=open(project / "scheduler.log", "ab"),
    )


def _wait_for_file(path: Path, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.2)


def test_a_scheduler_killed_mid_run_leaves_the_run_marked_worker_lost_by_the_next_one(
    project: Path, notebook: Callable[..., Path]
) -> None:
    nb = notebook(project / "slow.ipynb", "import time\nopen('started', 'w').write('1')\ntime.sleep(120)")
    schedule = ScheduleStore().add(
        str(nb), "* * * * *", pipeline="slow", since=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2)
    )
    first = _scheduler(project)
    _wait_for_file(project / "started")
    os.killpg(first.pid, signal.SIGKILL)  # the scheduler and its executors, as a lost machine
    first.wait()
    ScheduleStore().pause(schedule.id)  # the next scheduler starts no new slot
    time.sleep(3.5)  # one lease period

    Scheduler().tick()

    (run,) = RunStore().list_runs(pipeline="slow")
    assert run.status == "failed"
    assert (run.error or "").startswith("worker lost")


def test_sigterm_lets_the_current_run_finish_then_the_scheduler_exits(
    project: Path, etl_nb: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    source = Path(__file__).resolve().parents[2] / "notebooks"
    (project / "data").symlink_to(source / "data")
    nb = json.loads((source / "quickstart.ipynb").read_text())
    nb["cells"].insert(
        2,
        {
            "cell_type": "code",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
            "source": "import time; open('started', 'w').write('1'); time.sleep(2)",
        },
    )
    (project / "quickstart.ipynb").write_text(json.dumps(nb))
    ScheduleStore().add(
        str(project / "quickstart.ipynb"),
        "* * * * *",
        pipeline="quickstart",
        since=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1),
    )
    scheduler = _scheduler(project)
    _wait_for_file(project / "started")

    scheduler.send_signal(signal.SIGTERM)

    assert scheduler.wait(timeout=120) == 0
    (run,) = RunStore().list_runs(pipeline="quickstart")
    assert wait_for(run.id, seconds=1) == "success"  # finished before the scheduler exited
    steps = RunStore().get_run(run.id).steps  # type: ignore[union-attr]
    assert {s.step for s in steps} >= {"orders", "revenue"}
    assert all(s.status == "success" for s in steps)
    logged = (project / "scheduler.log").read_text().splitlines()
    lines = [json.loads(line) for line in logged if line.startswith("{")]
    events = [line["event"] for line in lines]
    assert events[0] == "scheduler started"
    assert "slot started" in events
    assert events[-1] == "scheduler stopped"
    listed = etl_nb("runs", "--pipeline", "quickstart", cwd=project).stdout
    assert "median" in listed
