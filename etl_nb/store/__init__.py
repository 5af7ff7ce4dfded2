"""The run store: the one record of runs, step runs, incremental state and schedules.

A SQLite file in the project folder's ``.etl_nb/`` by default (``etl_nb.project``); any SQLAlchemy URL
(PostgreSQL for teams) through ``ETL_NB_STORE_URL``. Every write is one
short transaction, and SQLite runs in WAL mode, so two runs at once (two
processes, or two threads) record side by side without corrupting it.
``RunRecorder`` is how a pipeline run writes into it. A run records its
process, and opening the store marks failed the runs whose process died
(``liveness``); the store's files and folders are owner-only (``private``).
"""

from etl_nb.results import StepResult
from etl_nb.store.liveness import PROCESS_DIED, fail_runs_whose_process_died, host_name, process_alive
from etl_nb.store.private import private_file, private_folder
from etl_nb.store.recorder import RUN_ID_ENV, RunRecorder, new_run_id, outer_run_id
from etl_nb.store.runs import RunRecord, RunStore, default_store_url

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
