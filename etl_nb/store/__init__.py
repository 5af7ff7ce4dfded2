"""The run store: the one record of runs, step runs, incremental state and schedules.

A SQLite file under ``$ETL_NB_HOME/.etl_nb/`` by default; any SQLAlchemy URL
(PostgreSQL for teams) through ``ETL_NB_STORE_URL``. Every write is one
short transaction, and SQLite runs in WAL mode, so two runs at once (two
processes, or two threads) record side by side without corrupting it.
"""

from etl_nb.store.runs import RunRecord, RunStore, StepRecord, default_store_url

__all__ = ["RunRecord", "RunStore", "StepRecord", "default_store_url"]
