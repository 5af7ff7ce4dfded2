"""Recorded runs: papermill execution, the parameters check, queued runs, schedules, backfills.

The public face for other parts of etl_nb (the CLI, the server extension):

- ``submit_run(notebook, params, *, trigger, backend="local", timeout=None, scheduled_for=None)``
  records a queued run, starts it in the background and returns its id;
- ``add_schedule(notebook, cron, ...)`` checks a schedule (cron, zone,
  parameters, alert targets) and stores it; ``ScheduleStore`` lists, pauses,
  resumes and removes schedules;
- ``check_parameters(notebook, params)`` is the one parameters check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from etl_nb._lazy import lazy_attributes

if TYPE_CHECKING:
    from etl_nb.runs.params import check_parameters
    from etl_nb.runs.schedules import add_schedule
    from etl_nb.runs.submit import submit_run
    from etl_nb.store.schedules import Schedule, ScheduleStore

# Imported on first use, so that a light module here (``etl_nb.runs.kernel``, which `etl-nb run`
# reaches first to start its kernel early) does not bring the store, the reader and the scheduler.
_HOMES = {
    "check_parameters": "etl_nb.runs.params",
    "add_schedule": "etl_nb.runs.schedules",
    "submit_run": "etl_nb.runs.submit",
    "Schedule": "etl_nb.store.schedules",
    "ScheduleStore": "etl_nb.store.schedules",
}


__getattr__ = lazy_attributes(__name__, _HOMES)


__all__ = ["Schedule", "ScheduleStore", "add_schedule", "check_parameters", "submit_run"]
