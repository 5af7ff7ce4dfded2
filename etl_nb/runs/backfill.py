"""``etl-nb backfill``: one recorded run per value of a parameter, resumable.

The values run from ``--from`` to ``--to`` inclusive: dates (``--step 1d``,
``7d``...) or whole numbers (``--step 1``...). A backfill is stored under an
id made from its notebook, parameter, range, step and other parameters, so a
second identical call finds it and runs only the values without a successful
run yet (failed ones again, lost ones again; ones still running are waited
for). Values run in order, or ``--parallel N`` at a time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from etl_nb.durations import parse_duration
from etl_nb.errors import SpecError
from etl_nb.runs.executor import reap
from etl_nb.runs.params import check_parameters
from etl_nb.runs.submit import resolve_notebook, submit_run
from etl_nb.store import RunStore
from etl_nb.store.queue import ACTIVE, RunQueue
from etl_nb.store.runs import now
from etl_nb.store.schema import backfills, run_jobs, runs

MAX_VALUES = 10_000


@dataclass
class Backfill:
    """A stored backfill and what became of each value."""

    id: str
    notebook: str
    param: str
    values: list[str]
    resumed: bool
    outcomes: dict[str, tuple[str, str]] = field(default_factory=dict)  # value -> (status, run id)

    @property
    def failed(self) -> list[str]:
        """The values whose run did not succeed."""
        return [v for v, (status, _) in self.outcomes.items() if status != "success"]


def values_between(start: str, end: str, step: str | None) -> list[str]:
    """The values from ``start`` to ``end`` inclusive: dates by days, or whole numbers."""
    start, end = str(start).strip(), str(end).strip()
    if _is_int(start) and _is_int(end):
        increment = int(step) if step and _is_int(step) else None
        if step and increment is None:
            raise SpecError(f"--step '{step}' must be a whole number for a range of whole numbers.")
        numbers = range(int(start), int(end) + 1, increment or 1)
        if increment is not None and increment <= 0:
            raise SpecError("--step must be above 0.")
        return _capped([str(n) for n in numbers], start, end)
    try:
        first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    except ValueError:
        raise SpecError(
            f"--from '{start}' and --to '{end}' must both be dates (2026-01-01) or both whole numbers."
        ) from None
    seconds = parse_duration(step or "1d", what="--step")
    if seconds % 86400:
        raise SpecError(f"--step '{step}' must be whole days for a range of dates (1d, 7d).")
    days = int(seconds // 86400)
    count = (last - first).days // days + 1 if last >= first else 0
    if count > MAX_VALUES:
        raise SpecError(f"The range {start}..{end} holds more than {MAX_VALUES} values: split it.")
    return _capped([(first + dt.timedelta(days=days * i)).isoformat() for i in range(count)], start, end)


def _capped(values: list[str], start: str, end: str) -> list[str]:
    if not values:
        raise SpecError(f"--from {start} comes after --to {end}: nothing to backfill.")
    if len(values) > MAX_VALUES:
        raise SpecError(f"The range {start}..{end} holds more than {MAX_VALUES} values: split it.")
    return values


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit() and len(text) < 19


def run_backfill(
    notebook: str | Path,
    param: str,
    start: str,
    end: str,
    *,
    step: str | None = None,
    parallel: int = 1,
    params: dict[str, Any] | None = None,
    store: RunStore | None = None,
    on_done: Callable[[str, str, str], None] | None = None,
    poll: float = 0.2,
) -> Backfill:
    """Run (or resume) the backfill; ``on_done(value, status, run_id)`` is called as each ends.

    Every value is checked against the notebook's parameters before the
    first run is recorded, so a bad range records nothing.
    """
    if parallel < 1:
        raise SpecError("--parallel must be 1 or more.")
    store = store or RunStore()
    source = resolve_notebook(notebook)
    values = values_between(start, end, step)
    others = dict(params or {})
    for value in (values[0], values[-1]):
        check_parameters(source, {**others, param: value})
    backfill = _stored(store, source, param, start, end, step or "", others, values)
    pending = _pending(store, backfill)
    in_flight: dict[str, str] = {}  # run id -> value
    queue = RunQueue(store)
    while pending or in_flight:
        while pending and len(in_flight) < parallel:
            value, running = pending.pop(0)
            run_id = running or submit_run(
                source,
                {**others, param: value},
                trigger="backfill",
                scheduled_for=_as_slot(value),
                store=store,
                backfill_id=backfill.id,
                backfill_value=value,
            )
            in_flight[run_id] = value
        time.sleep(poll)
        reap(store)
        for run_id, value in list(in_flight.items()):
            status = queue.status(run_id) or "failed"
            if status not in ACTIVE:
                del in_flight[run_id]
                backfill.outcomes[value] = (status, run_id)
                if on_done:
                    on_done(value, status, run_id)
    return backfill


def _as_slot(value: str) -> dt.datetime | None:
    try:
        return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), tzinfo=dt.UTC)
    except ValueError:
        return None


def _stored(
    store: RunStore,
    source: Path,
    param: str,
    start: str,
    end: str,
    step: str,
    others: dict[str, Any],
    values: list[str],
) -> Backfill:
    key = json.dumps([str(source), param, start, end, step, others], sort_keys=True, default=str)
    backfill_id = "bf" + hashlib.sha256(key.encode()).hexdigest()[:10]
    with store.engine.begin() as conn:
        found = conn.execute(select(backfills.c.id).where(backfills.c.id == backfill_id)).first()
        if found is None:
            conn.execute(
                backfills.insert().values(
                    id=backfill_id,
                    notebook=str(source),
                    param=param,
                    start=start,
                    end=end,
                    step=step,
                    params=others,
                    values=values,
                    created_at=now(),
                )
            )
    return Backfill(backfill_id, str(source), param, values, resumed=found is not None)


def _pending(store: RunStore, backfill: Backfill) -> list[tuple[str, str | None]]:
    """Values still to run, in order, each with the id of a run of it still active (to wait for)."""
    query = (
        select(run_jobs.c.backfill_value, runs.c.id, runs.c.status)
        .join(runs, runs.c.id == run_jobs.c.run_id)
        .where(run_jobs.c.backfill_id == backfill.id)
        .order_by(run_jobs.c.queued_at)
    )
    latest: dict[str, tuple[str, str]] = {}
    with store.engine.connect() as conn:
        for value, run_id, status in conn.execute(query):
            if latest.get(value, ("", ""))[0] != "success":
                latest[value] = (status, run_id)
    pending: list[tuple[str, str | None]] = []
    for value in backfill.values:
        status, run_id = latest.get(value, ("", ""))
        if status == "success":
            backfill.outcomes[value] = (status, run_id)
        else:
            pending.append((value, run_id if status in ACTIVE else None))
    return pending
