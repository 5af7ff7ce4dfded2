"""What the API does, without HTTP: the handlers call these methods off the event loop.

Every refusal is an ``ApiError`` (status and one sentence); a user mistake
the rest of etl_nb reports (an ``EtlError``, e.g. a bad parameter or cron
expression) keeps its own sentence. Runs start through
``etl_nb.runs.submit_run`` and schedules live in ``ScheduleStore``, the
same as for ``etl-nb run`` and ``etl-nb schedule``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import etl_nb
from etl_nb.errors import EtlError, SpecError
from etl_nb.project import pipeline_name
from etl_nb.runs import ScheduleStore, add_schedule, submit_run
from etl_nb.server.errors import ApiError
from etl_nb.server.paths import inside_root, relative_to_root
from etl_nb.server.pipelines import PipelineIndex
from etl_nb.store import RunRecord, RunStore

API_VERSION = 1  # the panel refuses to talk to a server with another major API version
MAX_RUNS = 200


class PanelService:
    """The panel's operations on the notebooks under ``root`` and the run store at ``store_url``.

    ``home`` is the project folder (its ``.etl_nb/`` keeps executed
    notebooks); ``backend`` is where ``POST runs`` executes (``local`` or
    ``celery``).
    """

    def __init__(self, root: Path, home: Path, store_url: str, backend: str = "local") -> None:
        self.root = root.resolve()
        self.home = home.resolve()
        self.store_url = store_url
        self.backend = backend
        self.index = PipelineIndex(self.root)
        self._store: RunStore | None = None
        self._store_lock = threading.Lock()

    @property
    def store(self) -> RunStore:
        """The run store, opened on first use (a store that cannot open fails the call, not the server)."""
        with self._store_lock:
            if self._store is None:
                try:
                    self._store = RunStore(self.store_url)
                except EtlError as exc:
                    raise ApiError(503, exc.message) from None
            return self._store

    # --- version and pipelines ---------------------------------------------------------

    def version(self) -> dict[str, Any]:
        """The package version and the API version the panel checks."""
        return {"version": etl_nb.__version__, "api_version": API_VERSION}

    def pipelines(self) -> list[dict[str, Any]]:
        """Every pipeline under the root, each with its last run's status per step."""
        found = self.index.pipelines()
        for pipeline in found:
            pipeline["last_run"] = self._last_run(pipeline["name"])
        return found

    def _last_run(self, name: str) -> dict[str, Any] | None:
        latest = self.store.list_runs(pipeline=name, limit=1)
        if not latest:
            return None
        record = self.store.get_run(latest[0].id) or latest[0]
        return {
            "id": record.id,
            "status": record.status,
            "started_at": record.started_at.isoformat(),
            "seconds": record.seconds,
            "rows": record.rows,
            "steps": {s.step: {"status": s.status, "rows": s.rows} for s in record.steps},
        }

    # --- runs --------------------------------------------------------------------------

    def runs(self, pipeline: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """Recent runs, newest first; ``pipeline`` is a pipeline name or a notebook path."""
        if not 1 <= limit <= MAX_RUNS:
            raise ApiError(400, f"'limit' must be a whole number from 1 to {MAX_RUNS}.")
        name = pipeline_name(pipeline) if pipeline and pipeline.endswith(".ipynb") else pipeline
        return [self._run_json(r) for r in self.store.list_runs(pipeline=name, limit=limit)]

    def run(self, run_id: str) -> dict[str, Any]:
        """One run with its steps (``run_id`` may be a unique prefix), or a 404."""
        return self._run_json(self._record(run_id))

    def executed_notebook(self, run_id: str) -> Path:
        """The executed notebook a run kept, or a 404 saying why there is none."""
        record = self._record(run_id)
        output = Path(record.output_notebook) if record.output_notebook else None
        if output is None or not output.is_file():
            raise ApiError(404, f"Run '{record.id}' kept no executed notebook (it may still be running).")
        return output

    def submit(self, body: Any) -> dict[str, Any]:
        """``{"notebook": PATH, "params": {...}}``: check it, queue the run, answer with its id."""
        fields = _object(body, {"notebook", "params"}, '{"notebook": "path/to/x.ipynb", "params": {}}')
        notebook = self._notebook(fields)
        run_id = submit_run(notebook, _params(fields), trigger="api", backend=self.backend, store=self.store)
        return {"id": run_id, "status": "queued", "pipeline": pipeline_name(notebook)}

    # --- schedules ---------------------------------------------------------------------

    def schedules(self) -> list[dict[str, Any]]:
        """Every schedule, oldest first, as ``etl-nb schedule list --json`` shows them."""
        return [self._schedule_json(s.to_dict()) for s in ScheduleStore(self.store).list()]

    def add_schedule(self, body: Any) -> dict[str, Any]:
        """``{"notebook", "cron", "timezone"?, "params"?}``: check and store a schedule."""
        example = '{"notebook": "x.ipynb", "cron": "0 6 * * *", "timezone": "Europe/Paris", "params": {}}'
        fields = _object(body, {"notebook", "cron", "timezone", "params"}, example)
        cron, timezone = fields.get("cron"), fields.get("timezone") or "UTC"
        if not isinstance(cron, str) or not isinstance(timezone, str):
            raise ApiError(400, f"'cron' and 'timezone' are text, e.g. {example}.")
        schedule = add_schedule(
            self._notebook(fields), cron, timezone=timezone, params=_params(fields), store=self.store
        )
        return self._schedule_json(schedule.to_dict())

    def update_schedule(self, schedule_id: str, body: Any) -> dict[str, Any]:
        """``{"paused": true|false}``: pause or resume a schedule."""
        fields = _object(body, {"paused"}, '{"paused": true}')
        if not isinstance(fields.get("paused"), bool):
            raise ApiError(
                400, 'Send {"paused": true} to pause the schedule or {"paused": false} to resume it.'
            )
        store = ScheduleStore(self.store)
        found = self._find_schedule(store, schedule_id)
        changed = store.pause(found) if fields["paused"] else store.resume(found)
        return self._schedule_json(changed.to_dict())

    def remove_schedule(self, schedule_id: str) -> dict[str, Any]:
        """Delete a schedule (its runs stay in the history); answers with what was removed."""
        store = ScheduleStore(self.store)
        return self._schedule_json(store.remove(self._find_schedule(store, schedule_id)).to_dict())

    # --- helpers -----------------------------------------------------------------------

    def _record(self, run_id: str) -> RunRecord:
        record = self.store.get_run(run_id)
        if record is None:
            raise ApiError(404, f"No run '{run_id}' in the store (or the prefix matches several).")
        return record

    @staticmethod
    def _find_schedule(store: ScheduleStore, schedule_id: str) -> str:
        try:
            return store.get(schedule_id).id
        except SpecError as exc:
            raise ApiError(404, exc.message) from None

    def _notebook(self, fields: dict[str, Any]) -> Path:
        given = fields.get("notebook")
        if not isinstance(given, str):
            raise ApiError(400, "'notebook' is the notebook's path under the server's root, e.g. 'x.ipynb'.")
        notebook = inside_root(self.root, given)
        if notebook.suffix != ".ipynb":
            raise ApiError(400, f"'{given}' is not a notebook: give an .ipynb file.")
        if not notebook.is_file():
            raise ApiError(404, f"Notebook '{given}' does not exist under the server's root.")
        return notebook

    def _run_json(self, record: RunRecord) -> dict[str, Any]:
        data = record.to_dict()
        data["notebook_path"] = relative_to_root(self.root, record.notebook)
        data["has_output"] = bool(record.output_notebook) and Path(record.output_notebook or "").is_file()
        return data

    def _schedule_json(self, data: dict[str, Any]) -> dict[str, Any]:
        data["notebook_path"] = relative_to_root(self.root, self.home / data["notebook"])
        return data


def _object(body: Any, allowed: set[str], example: str) -> dict[str, Any]:
    """``body`` as a JSON object with only ``allowed`` fields, or a 400 showing ``example``."""
    if not isinstance(body, dict):
        raise ApiError(400, f"Send a JSON object like {example}.")
    unknown = sorted(set(body) - allowed)
    if unknown:
        names = ", ".join(f"'{name}'" for name in sorted(allowed))
        raise ApiError(400, f"Unknown field '{unknown[0]}': this request takes {names}.")
    return body


def _params(fields: dict[str, Any]) -> dict[str, Any]:
    params = fields.get("params") or {}
    if not isinstance(params, dict):
        raise ApiError(400, "'params' must be an object of parameter names to values.")
    return params
