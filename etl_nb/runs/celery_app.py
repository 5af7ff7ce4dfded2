"""The Celery backend: Celery over Redis carries run ids; the run row in the store is the truth.

A message holds only a run id. The worker claims the queued run in the
store (``UPDATE ... WHERE status = 'queued'``), so a message delivered twice
runs once. Messages are acknowledged late (after the run) with prefetch 1,
and Redis' visibility timeout is above the longest run timeout, so a message
is only redelivered when a worker died; the redelivered message finds the run
claimed and does nothing, and the run's expired lease is reaped as
``worker lost`` by the next worker or scheduler. Each worker runs the reaper
every half lease period.

This module is what a sender needs (the app and ``send_run``); the worker's
side, which runs notebooks, is ``celery_worker``.
"""

from __future__ import annotations

import os

from celery import Celery

from etl_nb.store.queue import visibility_timeout

BROKER_ENV = "ETL_NB_BROKER_URL"
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
QUEUE_ENV = "ETL_NB_CELERY_QUEUE"  # one queue per environment sharing a Redis (default "etl_nb")


def queue_name() -> str:
    """The Celery queue runs go through."""
    return os.environ.get(QUEUE_ENV) or "etl_nb"


def make_app() -> Celery:
    """The Celery app, configured from ``ETL_NB_BROKER_URL``."""
    app = Celery("etl_nb", broker=os.environ.get(BROKER_ENV) or DEFAULT_BROKER)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue=queue_name(),
        broker_transport_options={"visibility_timeout": visibility_timeout()},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    return app


app = make_app()


RUN_TASK = "etl_nb.run"  # the one task: its argument is a run id


def send_run(run_id: str, *, delay: float = 0.0) -> None:
    """Queue a message for the recorded run ``run_id``, due after ``delay`` seconds."""
    app.send_task(RUN_TASK, (run_id,), countdown=delay or None, queue=queue_name())
