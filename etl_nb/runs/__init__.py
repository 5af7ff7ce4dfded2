"""Recorded runs: papermill execution, the parameters check, queued runs, schedules, backfills.

The public face for other parts of etl_nb (the CLI, the server extension):

- ``submit_run(notebook, params, *, trigger, backend="local", timeout=None, scheduled_for=None)``
  records a queued run, starts it in the background and returns its id;
- ``add_schedule(notebook, cron, ...)`` checks a schedule (cron, zone,
  parameters, alert targets) and stores it; ``ScheduleStore`` lists, pauses,
  resumes and removes schedules;
- ``check_parameters(notebook, params)`` is the one parameters check.
"""

from etl_nb.runs.params import check_parameters
from etl_nb.runs.schedules import add_schedule
from etl_nb.runs.submit import submit_run
from etl_nb.store.schedules import Schedule, ScheduleStore

__all__ = ["Schedule", "ScheduleStore", "add_schedule", "check_parameters", "submit_run"]
