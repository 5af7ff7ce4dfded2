"""The Celery backend: Celery over Redis carries run ids; the run row in the store is the truth.

A message holds only a run id. The worker claims the queued run in the
store (``UPDATE ... WHERE status = 'queued'``), so a message delivered twice
runs once. Messages are acknowledged late (after the run) with prefetch 1,
and Redis' visibility timeout is above the longest run timeout, so a message
is only redelivered when a worker died; the redelivered message finds the run
claimed and does nothing, and the run's expired lease is reaped as
``worker lost`` by the next worker or scheduler. Each worker runs the reaper
every half lease period.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from celery import Celery, signals

from etl_nb._logging import get_logger
from etl_nb.runs.executor import execute_claimed, reap
from etl_nb.runs.submit import visibility_timeout
from etl_nb.store.queue import lease_seconds

BROKER_ENV = "ETL_NB_BROKER_URL"
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
QUEUE = "etl_nb"


def make_app() -> Celery:
    """The Celery app, configured from ``ETL_NB_BROKER_URL``."""
    app = Celery("etl_nb", broker=os.environ.get(BROKER_ENV) or DEFAULT_BROKER)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue=QUEUE,
        broker_transport_options={"visibility_timeout": visibility_timeout()},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    return app


app = make_app()


@app.task(name="etl_nb.run")  # type: ignore[untyped-decorator]
def execute_run(run_id: str) -> str | None:
    """Run the queued run ``run_id`` if nobody claimed it yet."""
    result = execute_claimed(run_id)
    return result.status if result else None


def send_run(run_id: str, *, delay: float = 0.0) -> None:
    """Queue a message for the recorded run ``run_id``, due after ``delay`` seconds."""
    execute_run.apply_async((run_id,), countdown=delay or None)


@signals.worker_process_init.connect  # type: ignore[untyped-decorator]
def _fresh_store_connections(**_: Any) -> None:
    # A forked pool process must not share its parent's database connections.
    from etl_nb.store.runs import _engines

    for engine in _engines.values():
        engine.dispose(close=False)


@signals.worker_ready.connect  # type: ignore[untyped-decorator]
def _start_reaper(**_: Any) -> None:
    threading.Thread(target=_reap_forever, name="etl-nb-reaper", daemon=True).start()


def _reap_forever() -> None:
    stop = threading.Event()
    while not stop.wait(lease_seconds() / 2):
        try:
            reap()
        except Exception as exc:  # the store is down for a moment: try again next period
            get_logger().warning("reaper failed", error=f"{exc.__class__.__name__}: {exc}")


def run_worker(concurrency: int = 2, log_level: str = "INFO") -> None:
    """``etl-nb worker``: a Celery worker for etl_nb runs (blocks until stopped)."""
    reap()
    app.worker_main(
        ["worker", f"--concurrency={concurrency}", f"--loglevel={log_level}", "-Q", QUEUE, "-P", "prefork"]
    )
