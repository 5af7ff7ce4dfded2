"""The run store: the one record of runs, step runs, incremental state and schedules.

A SQLite file in the project folder's ``.etl_nb/`` by default (``etl_nb.project``); any SQLAlchemy URL
(PostgreSQL for teams) through ``ETL_NB_STORE_URL``. Every write is one
short transaction, and SQLite runs in WAL mode, so two runs at once (two
processes, or two threads) record side by side without corrupting it.
``RunRecorder`` is how a pipeline run writes into it. A run records its
process, and opening the store marks failed the runs whose process died
(``liveness``); the store's files and folders are owner-only (``private``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from etl_nb._lazy import lazy_attributes

if TYPE_CHECKING:
    from etl_nb.results import StepResult
    from etl_nb.store.liveness import PROCESS_DIED, fail_runs_whose_process_died, host_name, process_alive
    from etl_nb.store.private import private_file, private_folder
    from etl_nb.store.recorder import RUN_ID_ENV, RunRecorder, new_run_id, outer_run_id
    from etl_nb.store.runs import RunRecord, RunStore, default_store_url

# Imported on first use: the store's tables bring SQLAlchemy (about 0.15 s), which `etl-nb run`
# does not need before its kernel starts (``etl_nb.runs.kernel`` reads ``store.recorder``).
_HOMES = {
    "StepResult": "etl_nb.results",
    "PROCESS_DIED": "etl_nb.store.liveness",
    "fail_runs_whose_process_died": "etl_nb.store.liveness",
    "host_name": "etl_nb.store.liveness",
    "process_alive": "etl_nb.store.liveness",
    "private_file": "etl_nb.store.private",
    "private_folder": "etl_nb.store.private",
    "RUN_ID_ENV": "etl_nb.store.recorder",
    "RunRecorder": "etl_nb.store.recorder",
    "new_run_id": "etl_nb.store.recorder",
    "outer_run_id": "etl_nb.store.recorder",
    "RunRecord": "etl_nb.store.runs",
    "RunStore": "etl_nb.store.runs",
    "default_store_url": "etl_nb.project",
}


__getattr__ = lazy_attributes(__name__, _HOMES)


__all__ = [
    "PROCESS_DIED",
    "RUN_ID_ENV",
    "RunRecord",
    "RunRecorder",
    "RunStore",
    "StepResult",
    "default_store_url",
    "fail_runs_whose_process_died",
    "host_name",
    "new_run_id",
    "outer_run_id",
    "private_file",
    "private_folder",
    "process_alive",
]
