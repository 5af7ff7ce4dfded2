"""Starting recorded runs: check, queue in the store, hand to a backend.

``submit_run`` is the one way to start a run in the background -- the
scheduler, backfills and the server's ``POST runs`` all call it. It records
a ``queued`` run and returns its id at once; a local executor process (or a
Celery worker) then claims the run, holds its lease and records the result.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from etl_nb._logging import get_logger
from etl_nb.errors import SpecError
from etl_nb.project import pipeline_name
from etl_nb.runs.execute import home, runs_folder
from etl_nb.runs.kernel import find_notebook
from etl_nb.runs.logs import LOG_TO_PARENT_ENV
from etl_nb.runs.params import SCHEDULED_FOR, check_names, check_parameters, declared_parameters
from etl_nb.store import RunStore, new_run_id
from etl_nb.store.queue import Job, RunQueue, visibility_timeout

BACKENDS = ("local", "celery")

_children: list[subprocess.Popen[bytes]] = []
_children_lock = threading.Lock()


def submit_run(
    notebook: Path | str,
    params: dict[str, Any],
    *,
    trigger: str,
    backend: str = "local",
    timeout: float | None = None,
    scheduled_for: dt.datetime | None = None,
    store: RunStore | None = None,
    **job: Any,
) -> str:
    """Record a ``queued`` run of ``notebook`` and start it in the background; return its id at once.

    - ``params``: parameter values (text as from ``-p``, or JSON values),
      checked against the notebook's parameters cell before anything is
      recorded; a mistake raises ``SpecError`` (one sentence with the fix).
    - ``trigger``: who or what starts it, kept on the run
      (``manual``, ``api``, ``schedule``, ``backfill``, ``retry``).
    - ``backend``: ``local`` (an executor process on this machine) or
      ``celery`` (a worker, through ``ETL_NB_BROKER_URL``).
    - ``timeout``: seconds the whole run may take; then its kernel is
      killed and the run fails saying so.
    - ``scheduled_for``: the slot of a scheduled or backfilled run, passed
      as the parameter ``scheduled_for`` (ISO 8601) when the notebook's
      parameters cell defines that name.
    - ``job``: scheduler and backfill bookkeeping (``schedule_id``,
      ``retries``, ``alerts``, ``alert_on``, ``backfill_id``, ...), see
      ``RunQueue.enqueue``.

    Follow the run with ``RunStore().get_run(run_id)``: its status goes
    ``queued`` -> ``running`` -> ``success`` | ``failed``.
    """
    store = store or RunStore()
    run_id = queue_run(
        notebook,
        params,
        trigger=trigger,
        backend=backend,
        timeout=timeout,
        scheduled_for=scheduled_for,
        store=store,
        **job,
    )
    dispatch(run_id, backend, store=store)
    return run_id


def queue_run(
    notebook: Path | str,
    params: dict[str, Any],
    *,
    trigger: str,
    backend: str = "local",
    timeout: float | None = None,
    scheduled_for: dt.datetime | None = None,
    store: RunStore | None = None,
    run_id: str | None = None,
    **job: Any,
) -> str:
    """Check ``params`` and record a ``queued`` run without starting it; returns its id.

    ``run_id``: the id to record it under (``etl-nb run`` chose it for its early kernel), else a new one.
    """
    if backend not in BACKENDS:
        raise SpecError(f"Unknown backend '{backend}': use 'local' or 'celery'.")
    if timeout is not None and timeout <= 0:
        raise SpecError("The timeout must be a positive duration such as 30m or 90s.")
    if backend == "celery" and timeout is not None and timeout >= visibility_timeout():
        raise SpecError(
            f"The timeout ({timeout:g}s) must be shorter than ETL_NB_VISIBILITY_TIMEOUT "
            f"({visibility_timeout():g}s), or Celery delivers the run again while it runs."
        )
    check_names(params)
    source = resolve_notebook(notebook)
    typed = check_parameters(source, params)
    declared = declared_parameters(source)
    if scheduled_for is not None and SCHEDULED_FOR in declared.parameter_names:
        typed.setdefault(SCHEDULED_FOR, scheduled_for.isoformat())
    run_id = run_id or new_run_id()
    queue = RunQueue(store)
    queue.enqueue(
        run_id,
        pipeline=pipeline_name(source),
        notebook=str(source),
        recorded_params={**declared.parameters, **typed},
        params=typed,
        trigger=trigger,
        backend=backend,
        timeout=timeout,
        scheduled_for=scheduled_for,
        **job,
    )
    get_logger(pipeline=pipeline_name(source), run_id=run_id).info(
        "run queued",
        trigger=trigger,
        backend=backend,
        slot=scheduled_for.isoformat() if scheduled_for else None,
    )
    return run_id


def queue_retry(queue: RunQueue, job: Job, delay: float) -> str:
    """Queue the next attempt of a failed run, to start after ``delay`` seconds; returns its id."""
    run_id = new_run_id()
    queue.enqueue(
        run_id,
        pipeline=job.pipeline,
        notebook=job.notebook,
        recorded_params=job.params,
        params=job.params,
        trigger=job.trigger,
        backend=job.backend,
        timeout=job.timeout,
        schedule_id=job.schedule_id,
        scheduled_for=job.scheduled_for,
        backfill_id=job.backfill_id,
        attempt=job.attempt + 1,
        retries=job.retries - 1,
        retry_of=job.run_id,
        not_before=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay),
        alerts=job.alerts,
        alert_on=job.alert_on,
    )
    get_logger(pipeline=job.pipeline, run_id=run_id).info(
        "run retried", retry_of=job.run_id, attempt=job.attempt + 1, delay=round(delay, 3)
    )
    return run_id


def retry_delay(attempt: int) -> float:
    """Backoff before attempt ``attempt + 1``: ``ETL_NB_RETRY_DELAY`` (default 60 s) doubled each time."""
    try:
        initial = float(os.environ.get("ETL_NB_RETRY_DELAY") or 60)
    except ValueError:
        initial = 60.0
    return float(min(initial * 2 ** max(0, attempt - 1), 3600.0))


def dispatch(run_id: str, backend: str, *, store: RunStore | None = None, delay: float = 0.0) -> None:
    """Hand a queued run to its backend: a local executor process, or a Celery message."""
    store = store or RunStore()
    if backend == "celery":
        celery_backend().send_run(run_id, delay=delay)
        return
    _spawn_executor(run_id, store.url)


def celery_backend() -> Any:
    """``etl_nb.runs.celery_app``, imported only for this backend: Celery is heavy and an optional extra."""
    try:
        import etl_nb.runs.celery_app as backend
    except ImportError as exc:
        raise celery_missing(exc) from None
    return backend


def celery_missing(exc: ImportError) -> SpecError:
    """The one sentence for a Celery backend whose packages are not installed."""
    return SpecError(
        f"The celery backend needs Celery and Redis ({exc.name} is missing): pip install 'etl_nb[celery]'."
    )


def _spawn_executor(run_id: str, store_url: str) -> None:
    """``python -m etl_nb.runs.executor RUN_ID``, logging to the run's folder."""
    reap_children()
    folder = runs_folder(run_id)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    env = {**os.environ, "ETL_NB_STORE_URL": store_url, "ETL_NB_HOME": str(home())}
    inherit = bool(os.environ.get(LOG_TO_PARENT_ENV))  # a scheduler's service log, else the run's folder
    with (folder / "executor.log").open("ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "etl_nb.runs.executor", run_id],
            stdin=subprocess.DEVNULL,
            stdout=None if inherit else log,
            stderr=None if inherit else subprocess.STDOUT,
            env=env,
            cwd=str(home()),
        )
    with _children_lock:
        _children.append(child)


def reap_children() -> int:
    """Collect executor processes that ended (no zombies); returns how many still run."""
    with _children_lock:
        _children[:] = [c for c in _children if c.poll() is None]
        return len(_children)


def wait_for_children(timeout: float | None = None) -> None:
    """Wait until every executor this process started has ended (SIGTERM: finish, then exit)."""
    with _children_lock:
        children = list(_children)
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout)
    reap_children()


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def resolve_notebook(notebook: Path | str) -> Path:
    """``notebook`` as an absolute path (relative ones are taken from the project folder, then here)."""
    found = find_notebook(notebook)
    if found is None:
        raise SpecError(f"Notebook '{notebook}' does not exist. Check the path.")
    return found
