"""Adding a schedule: the cron expression, zone and targets checked by the store, parameters here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from etl_nb.project import pipeline_name
from etl_nb.runs.execute import home
from etl_nb.runs.params import check_parameters
from etl_nb.runs.submit import resolve_notebook
from etl_nb.store import RunStore
from etl_nb.store.schedules import Schedule, ScheduleStore


def add_schedule(
    notebook: str | Path,
    cron: str,
    *,
    timezone: str = "UTC",
    params: dict[str, Any] | None = None,
    timeout: float | None = None,
    retries: int = 0,
    alerts: list[str] | None = None,
    alert_on: str = "failure",
    store: RunStore | None = None,
) -> Schedule:
    """Check and store a schedule of ``notebook``; ``SpecError`` (one sentence) for any bad input.

    The notebook is kept relative to the project folder (``ETL_NB_HOME``)
    when it lies inside it, so the project can move. ``params`` are checked
    against the notebook's parameters cell and stored typed.
    """
    source = resolve_notebook(notebook)
    typed = check_parameters(source, params or {})
    try:
        kept = str(source.relative_to(home()))
    except ValueError:
        kept = str(source)
    return ScheduleStore(store).add(
        kept,
        cron,
        pipeline=pipeline_name(source),
        timezone=timezone,
        params=typed,
        timeout=timeout,
        retries=retries,
        alerts=alerts,
        alert_on=alert_on,
    )
