"""The executor: claim one queued run, run it holding a lease, record the result.

Every backend ends here: the local executor process
(``python -m etl_nb.runs.executor RUN_ID``), ``etl-nb run`` in the
foreground, and the Celery task. The claim is
``UPDATE ... WHERE status = 'queued'``, so a second executor for the same
run (a redelivered message) does nothing. While the run lasts a thread
renews its lease and watches its timeout; a timed-out run's kernel is
killed and the run fails with the reason. A failed run with retries left is
queued again after a backoff.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from etl_nb._logging import get_logger
from etl_nb.runs.execute import NotebookRun, execute_notebook
from etl_nb.runs.kernel import EarlyKernel
from etl_nb.runs.logs import LOG_FILE_ENV, configure_logging
from etl_nb.runs.submit import dispatch, queue_retry, retry_delay
from etl_nb.store import RunStore
from etl_nb.store.queue import Job, RunQueue, executor_id, lease_seconds


def execute_claimed(
    run_id: str, *, store: RunStore | None = None, progress: bool = False, kernel: EarlyKernel | None = None
) -> NotebookRun | None:
    """Claim and run the queued run ``run_id``; None when another executor has it (or it is gone).

    ``kernel``: the run's kernel, started early (``etl-nb run``); see ``execute_notebook``.
    """
    store = store or RunStore()
    queue = RunQueue(store)
    job = queue.job(run_id)
    if job is None:
        return None
    log = get_logger(pipeline=job.pipeline, run_id=run_id)
    _wait_until(job.not_before)
    owner = executor_id()
    if not queue.claim(run_id, owner):
        log.info("run already claimed", status=queue.status(run_id))
        return None
    log.info("run claimed", owner=owner, attempt=job.attempt)
    with LeaseKeeper(queue, run_id, owner, timeout=job.timeout) as keeper:
        log.info("run started", slot=job.scheduled_for.isoformat() if job.scheduled_for else None)
        result = execute_notebook(
            job.notebook,
            job.params,
            store=store,
            run_id=run_id,
            trigger=job.trigger,
            progress=progress,
            recorded=True,
            kernel=kernel,
        )
    if keeper.timed_out:
        queue.fail(run_id, f"timed out after {_duration(job.timeout or 0)}: the kernel was stopped.")
    status = queue.status(run_id) or result.status
    _log_steps(store, run_id, log)
    log.info("run finished", status=status)
    finish(queue, job, status)
    return NotebookRun(run_id, status, result.output_notebook, result.error)


def _log_steps(store: RunStore, run_id: str, log: Any) -> None:
    record = store.get_run(run_id)
    for step in record.steps if record else []:
        log.info("step finished", step=step.step, status=step.status, rows=step.rows, seconds=step.seconds)


def finish(queue: RunQueue, job: Job, status: str) -> None:
    """After a run ended (or was found lost): alerts, then a retry when the run failed and may retry."""
    from etl_nb.runs.alerts import send_alerts  # smtplib and the secrets: only when a run ends

    send_alerts(queue, job.run_id)
    if status == "failed" and job.retries > 0:
        delay = retry_delay(job.attempt)
        retry_id = queue_retry(queue, job, delay)
        dispatch(retry_id, job.backend, store=queue.store, delay=delay)


def reap(store: RunStore | None = None) -> list[str]:
    """Mark runs whose lease expired as failed (``worker lost``), alert and retry them; their ids."""
    queue = RunQueue(store)
    lost = queue.reap_expired()
    for job in lost:
        get_logger(pipeline=job.pipeline, run_id=job.run_id).warning("lease expired", owner=job.lease_owner)
        finish(queue, job, "failed")
    return [job.run_id for job in lost]


class LeaseKeeper:
    """Renews a run's lease every third of a lease period and stops the run at its timeout."""

    def __init__(
        self,
        queue: RunQueue,
        run_id: str,
        owner: str,
        *,
        timeout: float | None,
        stop_kernel: Callable[[], None] | None = None,
    ) -> None:
        self.queue, self.run_id, self.owner, self.timeout = queue, run_id, owner, timeout
        self.stop_kernel = stop_kernel or kill_child_processes
        self.timed_out = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._keep, name=f"lease-{run_id}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._done.set()
        self._thread.join()
        if kind is not None:  # Ctrl-C, or a bug: the run did not finish and must not stay running
            self.queue.fail(self.run_id, f"interrupted ({kind.__name__}) before the run finished.")
        self.queue.release(self.run_id)

    def _keep(self) -> None:
        period = lease_seconds() / 3
        while not self._done.wait(self._next_wait(period)):
            if self.timeout is not None and time.monotonic() - self._started >= self.timeout:
                self.timed_out = True
                self.stop_kernel()
                # Keep renewing until papermill sees the dead kernel and the run is recorded.
            with contextlib.suppress(Exception):  # a store hiccup: the next renewal tries again
                self.queue.renew(self.run_id, self.owner)

    def _next_wait(self, period: float) -> float:
        if self.timeout is None or self.timed_out:
            return period
        left = self.timeout - (time.monotonic() - self._started)
        return max(0.05, min(period, left))


def kill_child_processes() -> None:
    """Kill this process's children (the run's kernel and whatever it started)."""
    import psutil  # only when a run times out

    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            child.kill()


def _wait_until(moment: dt.datetime | None) -> None:
    if moment is not None:
        time.sleep(max(0.0, (moment - dt.datetime.now(dt.UTC)).total_seconds()))


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m etl_nb.runs.executor RUN_ID``: the local backend's process for one run."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m etl_nb.runs.executor RUN_ID", file=sys.stderr)
        return 2
    configure_logging(log_file=os.environ.get(LOG_FILE_ENV))
    # Ctrl-C in a terminal reaches the whole process group: a scheduler stopping on it lets this
    # run finish (it stops at its timeout, or by SIGTERM/SIGKILL sent to it).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    result = execute_claimed(args[0])
    return 0 if result is None or result.status == "success" else 1


if __name__ == "__main__":
    raise SystemExit(main())
