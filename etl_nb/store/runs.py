"""Reading and writing runs in the store."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Engine, create_engine, event, func, insert, inspect, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from etl_nb._masking import redact
from etl_nb.errors import EtlError, cut
from etl_nb.project import default_store_url
from etl_nb.results import StepResult, StepStatus, run_status
from etl_nb.store.liveness import fail_runs_whose_process_died, host_name
from etl_nb.store.private import private_file, private_folder
from etl_nb.store.schema import ADDED_COLUMNS, incremental_state, metadata, runs, step_runs

__all__ = ["RunRecord", "RunStore", "aware", "default_store_url", "now"]


def now() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class RunRecord:
    """One recorded run and its steps."""

    id: str
    pipeline: str
    status: str
    params: dict[str, Any]
    started_at: dt.datetime
    finished_at: dt.datetime | None
    seconds: float | None
    rows: int | None
    error: str | None
    notebook: str | None = None
    output_notebook: str | None = None
    trigger: str = "manual"
    steps: list[StepResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (times in ISO 8601)."""
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "steps"}
        for key in ("started_at", "finished_at"):
            if data[key] is not None:
                data[key] = data[key].isoformat()
        data["steps"] = [s.__dict__ for s in self.steps]
        return data


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _engine(url: str) -> Engine:
    """One engine per store URL per process; tables created on first use."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _create_engine(url)
            _create_tables(engine)
            _engines[url] = engine
        return engine


def _create_tables(engine: Engine, attempts: int = 5) -> None:
    """Create the store's tables if missing.

    Two processes opening a new store at once both see no tables and both
    create them; the loser's CREATE fails with "already exists". Looking
    again then finds the tables, so the race is retried, not reported.
    """
    for attempt in range(attempts):
        try:
            metadata.create_all(engine)
            _add_missing_columns(engine)
            return
        except SQLAlchemyError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def _add_missing_columns(engine: Engine) -> None:
    """Add the columns a store made by an older etl_nb lacks (``schema.ADDED_COLUMNS``)."""
    inspector = inspect(engine)
    for table, name in ADDED_COLUMNS:
        if name in {c["name"] for c in inspector.get_columns(table.name)}:
            continue
        column = table.c[name]
        kind = column.type.compile(dialect=engine.dialect)
        with engine.begin() as conn:
            conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{name}" {kind}'))


def _create_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        # Owner-only: SQLite gives its -wal and -shm files the database file's mode.
        database = Path(parsed.database)
        private_folder(database.parent)
        if not database.exists():
            private_file(database)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets readers and one writer work at once; busy_timeout makes a
        # second writer wait for the first instead of failing.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def _jsonable(value: Any) -> dict[str, Any]:
    """A high-water mark as JSON that keeps its type."""
    if isinstance(value, dt.datetime):
        return {"type": "datetime", "value": value.isoformat()}
    if isinstance(value, dt.date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, Decimal):
        return {"type": "decimal", "value": str(value)}
    if isinstance(value, bool | int | float | str) or value is None:
        return {"type": "plain", "value": value}
    return {"type": "str", "value": str(value)}


def _from_jsonable(data: dict[str, Any]) -> Any:
    kind, value = data.get("type"), data.get("value")
    if kind == "datetime":
        return dt.datetime.fromisoformat(value)  # type: ignore[arg-type]
    if kind == "date":
        return dt.date.fromisoformat(value)  # type: ignore[arg-type]
    if kind == "decimal":
        return Decimal(value)  # type: ignore[arg-type]
    return value


class RunStore:
    """The run store at ``url`` (default: ``default_store_url()``)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_store_url()
        try:
            self.engine = _engine(self.url)
        except (SQLAlchemyError, OSError) as exc:
            detail = " ".join(str(getattr(exc, "orig", None) or exc).split()).rstrip(".")
            detail += "" if detail.endswith(("?", "!")) else "."
            raise EtlError(
                f"Cannot open the run store at {redact(self.url)}: {exc.__class__.__name__}: "
                f"{redact(detail)} "
                "Check ETL_NB_STORE_URL (or ETL_NB_HOME) and that the database is reachable."
            ) from None
        with self.engine.begin() as conn:
            fail_runs_whose_process_died(conn)

    # --- runs ----------------------------------------------------------------------------

    def start_run(
        self,
        run_id: str,
        pipeline: str,
        params: dict[str, Any],
        *,
        notebook: str | None = None,
        trigger: str = "manual",
    ) -> None:
        """Record that a run started; a ``run_id`` already recorded is an ``EtlError``."""
        try:
            self._insert_run(run_id, pipeline, params, notebook=notebook, trigger=trigger)
        except IntegrityError:
            raise EtlError(
                f"A run with id '{run_id}' is already recorded. Give a new run id, or leave it out."
            ) from None

    def _insert_run(
        self, run_id: str, pipeline: str, params: dict[str, Any], *, notebook: str | None, trigger: str
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(runs).values(
                    id=run_id,
                    pipeline=pipeline,
                    status="running",
                    params=_json_params(params),
                    notebook=notebook,
                    trigger=trigger,
                    started_at=now(),
                    pid=os.getpid(),
                    host=host_name(),
                )
            )

    def finish_run(
        self,
        run_id: str,
        status: str,
        steps: list[StepResult] | None,
        *,
        error: str | None = None,
        output_notebook: str | None = None,
    ) -> None:
        """Record a run's end, in one transaction.

        ``steps`` replaces the run's step records; None keeps the ones
        recorded as they ran (``record_steps``). The status recorded is
        ``run_status`` of those steps: a failed one makes the run failed
        whatever ``status`` says.
        """
        finished = now()
        with self.engine.begin() as conn:
            started = aware(conn.execute(select(runs.c.started_at).where(runs.c.id == run_id)).scalar_one())
            assert started is not None
            if steps is not None:
                conn.execute(step_runs.delete().where(step_runs.c.run_id == run_id))
                self._insert_steps(conn, run_id, steps, first_position=0)
            recorded = [
                _step_record(row._mapping)
                for row in conn.execute(select(step_runs).where(step_runs.c.run_id == run_id))
            ]
            values: dict[str, Any] = {
                "status": run_status(recorded, failed=status == "failed"),
                "finished_at": finished,
                "seconds": (finished - started).total_seconds(),
                "rows": sum(r.rows or 0 for r in recorded if r.kind == "load") or None,
                "error": _stored_error(error),
            }
            if output_notebook is not None:
                values["output_notebook"] = output_notebook
            conn.execute(update(runs).where(runs.c.id == run_id).values(**values))

    def record_steps(self, run_id: str, steps: list[StepResult]) -> None:
        """Add steps to a running run as they finish; a step recorded again replaces its record."""
        if not steps:
            return
        with self.engine.begin() as conn:
            conn.execute(
                step_runs.delete().where(
                    step_runs.c.run_id == run_id, step_runs.c.step.in_([s.step for s in steps])
                )
            )
            last = conn.execute(
                select(func.max(step_runs.c.position)).where(step_runs.c.run_id == run_id)
            ).scalar()
            self._insert_steps(conn, run_id, steps, first_position=0 if last is None else last + 1)

    @staticmethod
    def _insert_steps(conn: Any, run_id: str, steps: list[StepResult], first_position: int) -> None:
        if not steps:
            return
        conn.execute(
            insert(step_runs),
            [
                {
                    "run_id": run_id,
                    "position": first_position + i,
                    **s.__dict__,
                    "error": _stored_error(s.error),
                }
                for i, s in enumerate(steps)
            ],
        )

    def list_runs(self, pipeline: str | None = None, limit: int = 20) -> list[RunRecord]:
        """The most recent runs, newest first."""
        query = select(runs).order_by(runs.c.started_at.desc()).limit(limit)
        if pipeline:
            query = query.where(runs.c.pipeline == pipeline)
        with self.engine.connect() as conn:
            return [_run_record(row._mapping, []) for row in conn.execute(query)]

    def get_run(self, run_id: str) -> RunRecord | None:
        """One run with its steps; ``run_id`` may be a unique prefix."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(runs).where(runs.c.id.startswith(run_id, autoescape=True)).limit(2)
            ).all()
            if len(rows) != 1:
                return None
            run = rows[0]._mapping
            steps = conn.execute(
                select(step_runs).where(step_runs.c.run_id == run["id"]).order_by(step_runs.c.position)
            )
            return _run_record(run, [_step_record(s._mapping) for s in steps])

    # --- incremental state ---------------------------------------------------------------

    def last_columns(self, pipeline: str, step: str) -> tuple[str, dict[str, str]] | None:
        """The columns (name -> type) that extract ``step`` had in the latest successful run, and that
        run's id; None before its first good run (schema drift compares with them)."""
        query = (
            select(runs.c.id, step_runs.c.detail)
            .join(step_runs, step_runs.c.run_id == runs.c.id)
            .where(runs.c.pipeline == pipeline, runs.c.status == "success", step_runs.c.step == step)
            .order_by(runs.c.started_at.desc())
            .limit(20)
        )
        with self.engine.connect() as conn:
            for run_id, detail in conn.execute(query):
                columns = (detail or {}).get("columns")
                if isinstance(columns, dict):
                    return str(run_id), {str(k): str(v) for k, v in columns.items()}
        return None

    def watermark(self, pipeline: str, step: str) -> Any:
        """The high-water mark kept for ``step``, or None before its first good run."""
        query = select(incremental_state.c.value).where(
            incremental_state.c.pipeline == pipeline, incremental_state.c.step == step
        )
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar_one_or_none()
        return None if value is None else _from_jsonable(value)

    def set_watermarks(self, pipeline: str, run_id: str, marks: dict[str, tuple[str, Any]]) -> None:
        """Advance the high-water marks of a successful run: ``{step: (column, value)}``."""
        if not marks:
            return
        with self.engine.begin() as conn:
            for step, (column, value) in marks.items():
                conn.execute(
                    incremental_state.delete().where(
                        incremental_state.c.pipeline == pipeline, incremental_state.c.step == step
                    )
                )
                conn.execute(
                    insert(incremental_state).values(
                        pipeline=pipeline,
                        step=step,
                        column_name=column,
                        value=_jsonable(value),
                        run_id=run_id,
                        updated_at=now(),
                    )
                )


def _stored_error(error: str | None) -> str | None:
    """An error as the store keeps it: secrets masked, a huge one (a 100 KB value quoted) cut."""
    return cut(redact(error)) if error else None


def _json_params(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON; text goes through ``redact`` (a URL passed with its password, say)."""
    plain = {k: v if isinstance(v, bool | int | float | type(None)) else str(v) for k, v in params.items()}
    return {k: redact(v) if isinstance(v, str) else v for k, v in plain.items()}


def aware(value: dt.datetime | None) -> dt.datetime | None:
    """``value`` as UTC-aware (SQLite returns naive datetimes)."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _run_record(row: Any, steps: list[StepResult]) -> RunRecord:
    return RunRecord(
        id=row["id"],
        pipeline=row["pipeline"],
        status=row["status"],
        params=row["params"] or {},
        started_at=aware(row["started_at"]) or now(),
        finished_at=aware(row["finished_at"]),
        seconds=row["seconds"],
        rows=row["rows"],
        error=row["error"],
        notebook=row["notebook"],
        output_notebook=row["output_notebook"],
        trigger=row["trigger"],
        steps=steps,
    )


def _step_record(row: Any) -> StepResult:
    return StepResult(
        step=row["step"],
        kind=row["kind"],
        status=cast(StepStatus, row["status"]),
        rows=row["rows"],
        seconds=row["seconds"] or 0.0,
        error=row["error"],
        detail=row["detail"],
    )
