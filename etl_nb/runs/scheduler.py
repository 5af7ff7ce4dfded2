"""``etl-nb scheduler``: start each schedule's due slot once, however many schedulers share a store.

Each tick, for every active schedule:

1. the due slot is the latest slot after the schedule's persisted last slot
   (not "now"): after downtime the missed slots coalesce into one run of the
   latest, and the run says how many it stands for;
2. the slot is claimed by inserting ``(schedule, slot)`` into a table with a
   unique key (``INSERT ... ON CONFLICT DO NOTHING``): of several
   schedulers, one wins and the others move on;
3. if a run of the same pipeline is still queued or running, the slot is
   recorded as skipped (overlap); otherwise ``submit_run`` queues the run,
   with the slot as ``scheduled_for``, and a backend executes it.

Runs whose lease expired are failed as ``worker lost`` at start-up and on
every tick. SIGTERM stops the claiming, lets the runs this scheduler started
finish, then returns. The clock is injectable, so tests drive time.
"""

from __future__ import annotations

import datetime as dt
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from etl_nb._logging import get_logger
from etl_nb.errors import EtlError
from etl_nb.runs.executor import reap
from etl_nb.runs.submit import resolve_notebook, submit_run, wait_for_children
from etl_nb.store import RunStore
from etl_nb.store.queue import RunQueue, executor_id, lease_seconds
from etl_nb.store.schedules import Schedule, ScheduleStore, SlotClaims
from etl_nb.store.slots import latest_due, missed_between, zone

DEFAULT_INTERVAL = 30.0  # seconds between looks at the store when no slot is nearer


class Clock(Protocol):
    """Where the scheduler reads the time and waits: the system's, or a test's."""

    def now(self) -> dt.datetime:
        """The current time, UTC-aware."""

    def sleep(self, seconds: float, stop: threading.Event) -> None:
        """Wait ``seconds``, or less when ``stop`` is set."""


class SystemClock:
    """The real time."""

    def now(self) -> dt.datetime:
        """The current time, UTC-aware."""
        return dt.datetime.now(dt.UTC)

    def sleep(self, seconds: float, stop: threading.Event) -> None:
        """Wait ``seconds`` unless asked to stop."""
        stop.wait(max(0.0, seconds))


@dataclass(frozen=True)
class SlotOutcome:
    """What one tick did with a schedule's due slot."""

    schedule_id: str
    slot: dt.datetime
    outcome: str  # started | skipped | failed | lost (another scheduler claimed it)
    run_id: str | None = None
    reason: str | None = None


Submit = Callable[..., str]


class Scheduler:
    """Starts due slots of the schedules in ``store``; see the module docstring."""

    def __init__(
        self,
        store: RunStore | None = None,
        *,
        backend: str = "local",
        clock: Clock | None = None,
        submit: Submit | None = None,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        self.store = store or RunStore()
        self.backend = backend
        self.clock = clock or SystemClock()
        self.submit = submit or submit_run
        self.interval = interval
        self.owner = executor_id()
        self.schedules = ScheduleStore(self.store)
        self.claims = SlotClaims(self.store)
        self.queue = RunQueue(self.store)
        self.stopping = threading.Event()
        self.log = get_logger(scheduler=self.owner)

    def tick(self) -> list[SlotOutcome]:
        """One look at the store: reap expired leases, then start (or skip) every due slot."""
        reap(self.store)
        outcomes = []
        for schedule in self.schedules.list():
            if not schedule.paused and not self.stopping.is_set():
                outcome = self._consider(schedule)
                if outcome is not None:
                    outcomes.append(outcome)
        return outcomes

    def _consider(self, schedule: Schedule) -> SlotOutcome | None:
        at = self.clock.now()
        tz = zone(schedule.timezone)
        after = schedule.last_slot or schedule.created_at
        due = latest_due(schedule.cron, tz, after, at)
        if due is None:
            return None
        coalesced = missed_between(schedule.cron, tz, after, due)
        won = self.claims.claim(schedule.id, due, self.owner, coalesced=coalesced)
        self.schedules.advance(schedule.id, due)
        if not won:
            return SlotOutcome(schedule.id, due, "lost")
        log = self.log.bind(pipeline=schedule.pipeline, schedule=schedule.id, slot=due.isoformat())
        if coalesced:
            log.info("missed slots coalesced", missed=coalesced)
        if self.queue.is_active(schedule.pipeline):
            reason = "overlap: a run of this pipeline was still queued or running"
            self.claims.settle(schedule.id, due, "skipped", reason=reason)
            log.info("slot skipped", reason=reason)
            return SlotOutcome(schedule.id, due, "skipped", reason=reason)
        try:
            run_id = self.submit(
                resolve_notebook(schedule.notebook),
                schedule.params,
                trigger="schedule",
                backend=self.backend,
                timeout=schedule.timeout,
                scheduled_for=due,
                store=self.store,
                schedule_id=schedule.id,
                retries=schedule.retries,
                alerts=schedule.alerts or None,
                alert_on=schedule.alert_on,
            )
        except EtlError as exc:  # the notebook moved, a parameter no longer exists: say so, go on
            self.claims.settle(schedule.id, due, "failed", reason=str(exc))
            log.warning("slot failed", error=str(exc))
            return SlotOutcome(schedule.id, due, "failed", reason=str(exc))
        self.claims.settle(schedule.id, due, "started", run_id=run_id)
        self.schedules.set_last_run(schedule.id, run_id)
        log.info("slot started", run_id=run_id)
        return SlotOutcome(schedule.id, due, "started", run_id=run_id)

    def seconds_to_next_slot(self) -> float:
        """How long the scheduler may sleep: to the nearest slot, at most ``interval`` and half a lease."""
        at = self.clock.now()
        wait = min(self.interval, lease_seconds() / 2)
        for schedule in self.schedules.list():
            if not schedule.paused:
                wait = min(wait, (schedule.next_slot(at) - at).total_seconds())
        return max(0.05, wait)

    def run(self, *, install_signals: bool = True) -> None:
        """Tick until SIGTERM (or SIGINT); then let the runs this process started finish."""
        if install_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self._on_signal)
        self.log.info("scheduler started", backend=self.backend)
        while not self.stopping.is_set():
            try:
                self.tick()
            except EtlError as exc:
                self.log.warning("tick failed", error=str(exc))
            if not self.stopping.is_set():
                self.clock.sleep(self.seconds_to_next_slot(), self.stopping)
        self.log.info("scheduler stopping: waiting for its runs to finish")
        wait_for_children()
        self.log.info("scheduler stopped")

    def stop(self) -> None:
        """Ask ``run`` to return after the current runs finish."""
        self.stopping.set()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.log.info("signal received", signal=signal.Signals(signum).name)
        self.stop()
