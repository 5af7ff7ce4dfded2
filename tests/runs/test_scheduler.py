"""The scheduler on an injectable clock: due slots, restart, downtime, overlap, retries, scheduled_for."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from runtools import wait_for

from etl_nb.runs.scheduler import Scheduler
from etl_nb.runs.submit import queue_run
from etl_nb.store import RunStore
from etl_nb.store.schedules import ScheduleStore, SlotClaims

T0 = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: dt.datetime) -> None:
        self.at = start

    def now(self) -> dt.datetime:
        return self.at

    def sleep(self, seconds: float, stop: threading.Event) -> None:
        self.at += dt.timedelta(seconds=seconds)


class Recorder:
    """A submit that records the run in the store and ends it at once (``finish``) or leaves it queued."""

    def __init__(self, finish: str | None = "success") -> None:
        self.finish = finish
        self.calls: list[dict[str, Any]] = []

    def __call__(self, notebook: Path, params: dict[str, Any], **options: Any) -> str:
        self.calls.append({"params": params, **options})
        run_id = queue_run(notebook, params, **options)
        if self.finish:
            RunStore().finish_run(run_id, self.finish, None)
        return run_id


@pytest.fixture
def hourly(project: Path, notebook: Callable[..., Path]) -> str:
    nb = notebook(project / "hourly.ipynb", "print(scheduled_for)", 'scheduled_for = ""')
    return ScheduleStore().add(str(nb), "0 * * * *", pipeline="hourly", since=T0).id


def test_a_slot_runs_once_when_due_and_a_restarted_scheduler_does_not_run_it_again(hourly: str) -> None:
    clock, submit = FakeClock(T0 + dt.timedelta(minutes=30)), Recorder()
    scheduler = Scheduler(clock=clock, submit=submit)

    assert scheduler.tick() == []  # 08:30: nothing due yet
    clock.at = T0 + dt.timedelta(hours=1, seconds=5)
    first = scheduler.tick()
    again = Scheduler(clock=clock, submit=submit).tick()  # a restart at the same moment

    assert [(o.outcome, o.slot) for o in first] == [("started", T0 + dt.timedelta(hours=1))]
    assert again == []
    assert len(submit.calls) == 1
    assert submit.calls[0]["scheduled_for"] == T0 + dt.timedelta(hours=1)
    assert submit.calls[0]["trigger"] == "schedule"


def test_after_downtime_the_missed_slots_coalesce_into_one_run_of_the_latest(hourly: str) -> None:
    clock, submit = FakeClock(T0 + dt.timedelta(hours=5, minutes=10)), Recorder()

    outcomes = Scheduler(clock=clock, submit=submit).tick()

    assert [o.slot for o in outcomes] == [T0 + dt.timedelta(hours=5)]
    assert len(submit.calls) == 1
    assert SlotClaims().slots(hourly)[0]["coalesced"] == 4  # 09:00 to 12:00, folded into 13:00


def test_a_slot_due_while_the_last_run_is_still_going_is_recorded_as_skipped(hourly: str) -> None:
    clock, submit = FakeClock(T0 + dt.timedelta(hours=1, seconds=1)), Recorder(finish=None)
    scheduler = Scheduler(clock=clock, submit=submit)

    scheduler.tick()
    clock.at += dt.timedelta(hours=1)
    skipped = scheduler.tick()

    assert [o.outcome for o in skipped] == ["skipped"]
    assert len(submit.calls) == 1
    slots = SlotClaims().slots(hourly)
    assert [s["outcome"] for s in slots] == ["started", "skipped"]
    assert slots[1]["reason"].startswith("overlap")


def test_a_paused_schedule_starts_nothing(hourly: str) -> None:
    ScheduleStore().pause(hourly)
    submit = Recorder()

    Scheduler(clock=FakeClock(T0 + dt.timedelta(hours=3)), submit=submit).tick()

    assert submit.calls == []


def test_a_scheduled_run_gets_its_slot_as_scheduled_for_and_records_its_steps(hourly: str) -> None:
    clock = FakeClock(T0 + dt.timedelta(hours=1, seconds=1))

    (outcome,) = Scheduler(clock=clock).tick()  # the real submit_run, a local executor

    assert outcome.run_id is not None
    assert wait_for(outcome.run_id) == "success"
    record = RunStore().get_run(outcome.run_id)
    assert record is not None
    assert record.params == {"scheduled_for": "2026-06-01T09:00:00+00:00"}
    assert record.trigger == "schedule"
    executed = nbformat.read(record.output_notebook, as_version=4)
    assert "2026-06-01T09:00:00+00:00" in executed.cells[-2].outputs[0]["text"]
    shown = ScheduleStore().get(hourly).to_dict(clock.now())
    assert shown["last_run"]["status"] == "success"


def test_a_failed_scheduled_run_is_retried_after_a_backoff(
    project: Path, notebook: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ETL_NB_RETRY_DELAY", "0.2")
    nb = notebook(project / "flaky.ipynb", "open('tries', 'a').write('x')\nraise ValueError('source down')")
    ScheduleStore().add(str(nb), "0 * * * *", pipeline="flaky", since=T0, retries=1)

    (outcome,) = Scheduler(clock=FakeClock(T0 + dt.timedelta(hours=1, seconds=1))).tick()

    assert outcome.run_id is not None
    assert wait_for(outcome.run_id) == "failed"
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)
    while (project / "tries").read_text() != "xx" and dt.datetime.now(dt.UTC) < deadline:
        threading.Event().wait(0.2)
    runs = RunStore().list_runs(pipeline="flaky")
    assert len(runs) == 2
    assert wait_for(runs[0].id) == "failed"
    assert "ValueError: source down" in (RunStore().get_run(runs[0].id).error or "")  # type: ignore[union-attr]
