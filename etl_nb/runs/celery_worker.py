"""The Celery worker's side: the task that runs a queued run, the reaper, ``etl-nb worker``.

A message holds only a run id (see ``celery_app``); the task claims the run in
the store before it runs it, so a redelivered message does nothing.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from celery import signals

from etl_nb._logging import get_logger
from etl_nb.runs.celery_app import RUN_TASK, app, queue_name
from etl_nb.runs.executor import execute_claimed, reap
from etl_nb.store.queue import lease_seconds


@app.task(name=RUN_TASK)  # type: ignore[untyped-decorator]
def execute_run(run_id: str) -> str | None:
    """Run the queued run ``run_id`` if nobody claimed it yet."""
    result = execute_claimed(run_id)
    return result.status if result else None


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
        [
            "worker",
            f"--concurrency={concurrency}",
            f"--loglevel={log_level}",
            f"--queues={queue_name()}",
            "--pool=prefork",
            f"--hostname=etl-nb-{os.getpid()}@%h",  # two workers on one machine need two names
            "--without-gossip",
            "--without-mingle",
        ]
    )
