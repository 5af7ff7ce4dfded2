"""Run history as metrics: recent runs with their steps, and duration and rows trends."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from etl_nb.store import RunRecord, RunStore
from etl_nb.store.queue import RunQueue
from etl_nb.store.schema import runs

_BARS = "▁▂▃▄▅▆▇█"


def recent_runs(
    store: RunStore | None = None, *, pipeline: str | None = None, status: str | None = None, limit: int = 20
) -> list[RunRecord]:
    """The most recent runs, newest first, each with its steps."""
    store = store or RunStore()
    query = select(runs.c.id).order_by(runs.c.started_at.desc()).limit(limit)
    if pipeline:
        query = query.where(runs.c.pipeline == pipeline)
    if status:
        query = query.where(runs.c.status == status)
    with store.engine.connect() as conn:
        ids = [row.id for row in conn.execute(query)]
    found = [store.get_run(run_id) for run_id in ids]
    return [record for record in found if record is not None]


def run_dict(record: RunRecord, queue: RunQueue | None = None) -> dict[str, Any]:
    """``record.to_dict()`` plus what became of its alerts, when any was sent."""
    data = record.to_dict()
    if queue is not None:
        alerts = queue.alert_results(record.id)
        if alerts:
            data["alerts"] = alerts
    return data


def sparkline(values: Sequence[float | None]) -> str:
    """One bar per value, oldest first; a gap for a missing value."""
    present = [v for v in values if v is not None]
    if not present:
        return ""
    low, high = min(present), max(present)
    span = (high - low) or 1.0
    return "".join(" " if v is None else _BARS[int((v - low) / span * (len(_BARS) - 1))] for v in values)


def trends(records: Sequence[RunRecord]) -> dict[str, Any]:
    """Duration and rows over ``records`` (newest first in, oldest first out), with medians."""
    ordered = list(reversed(records))
    seconds = [r.seconds for r in ordered]
    rows = [float(r.rows) if r.rows is not None else None for r in ordered]
    known_seconds = [s for s in seconds if s is not None]
    known_rows = [r for r in rows if r is not None]
    return {
        "runs": len(ordered),
        "failed": sum(r.status == "failed" for r in ordered),
        "seconds": seconds,
        "rows": [None if r is None else int(r) for r in rows],
        "median_seconds": statistics.median(known_seconds) if known_seconds else None,
        "median_rows": statistics.median(known_rows) if known_rows else None,
        "seconds_trend": sparkline(seconds),
        "rows_trend": sparkline(rows),
    }
