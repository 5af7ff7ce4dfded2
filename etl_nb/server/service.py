"""What the API does, without HTTP: the handlers call these methods off the event loop.

Every refusal is an ``ApiError`` (status and one sentence); a user mistake
the rest of etl_nb reports (an ``EtlError``, e.g. a bad parameter) keeps
its own sentence.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import etl_nb
from etl_nb.errors import EtlError
from etl_nb.notebook.reader import pipeline_name
from etl_nb.runs.execute import check_parameters
from etl_nb.server.errors import ApiError
from etl_nb.server.launch import RunLauncher
from etl_nb.server.paths import inside_root, relative_to_root
from etl_nb.server.pipelines import PipelineIndex
from etl_nb.store import RunRecord, RunStore

API_VERSION = 1  # the panel refuses to talk to a server with another major API version
MAX_RUNS = 200


class PanelService:
    """The panel's operations on the notebooks under ``root`` and the run store at ``store_url``."""

    def __init__(self, root: Path, store_url: str, launcher: RunLauncher) -> None:
        self.root = root.resolve()
        self.store_url = store_url
        self.launcher = launcher
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
        pending = [r for r in self._pending() if r["pipeline"] == name]
        latest = self.store.list_runs(pipeline=name, limit=1)
        if pending and (not latest or pending[0]["started_at"] > latest[0].started_at.isoformat()):
            run = pending[0]
            return {k: run[k] for k in ("id", "status", "started_at", "seconds", "rows")} | {"steps": {}}
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
        recorded = [self._run_json(r) for r in self.store.list_runs(pipeline=name, limit=limit)]
        known = {r["id"] for r in recorded}
        pending = [
            r for r in self._pending() if r["id"] not in known and (name is None or r["pipeline"] == name)
        ]
        return (pending + recorded)[:limit]

    def run(self, run_id: str) -> dict[str, Any]:
        """One run with its steps (``run_id`` may be a unique prefix), or a 404."""
        record = self.store.get_run(run_id)
        if record is not None:
            self.launcher.forget(record.id)
            return self._run_json(record)
        pending = self.launcher.pending(run_id)
        if pending is None:
            raise ApiError(404, f"No run '{run_id}' in the store (or the prefix matches several).")
        return pending

    def executed_notebook(self, run_id: str) -> Path:
        """The executed notebook a run kept, or a 404 saying why there is none."""
        record = self.store.get_run(run_id)
        if record is None:
            raise ApiError(404, f"No run '{run_id}' in the store (or the prefix matches several).")
        output = Path(record.output_notebook) if record.output_notebook else None
        if output is None or not output.is_file():
            raise ApiError(404, f"Run '{record.id}' kept no executed notebook (it may still be running).")
        return output

    def submit(self, body: Any) -> dict[str, Any]:
        """``{"notebook": PATH, "params": {...}}``: check it, start the run, answer with its id."""
        if not isinstance(body, dict) or not isinstance(body.get("notebook"), str):
            raise ApiError(400, 'Send a JSON object like {"notebook": "path/to/x.ipynb", "params": {}}.')
        unknown = sorted(set(body) - {"notebook", "params"})
        if unknown:
            raise ApiError(400, f"Unknown field '{unknown[0]}': a run takes 'notebook' and 'params'.")
        notebook = inside_root(self.root, body["notebook"])
        if notebook.suffix != ".ipynb":
            raise ApiError(400, f"'{body['notebook']}' is not a notebook: give an .ipynb file.")
        if not notebook.is_file():
            raise ApiError(404, f"Notebook '{body['notebook']}' does not exist under the server's root.")
        params = check_parameters(_as_text(body.get("params") or {}))
        run_id = self.launcher.submit(notebook, params, trigger="api")
        return {"id": run_id, "status": "queued", "pipeline": pipeline_name(notebook)}

    # --- helpers -----------------------------------------------------------------------

    def _pending(self) -> list[dict[str, Any]]:
        """Runs started here that the store does not hold yet."""
        waiting = []
        for run in self.launcher.pending_runs():
            if self.store.get_run(run["id"]) is None:
                waiting.append(run)
            else:
                self.launcher.forget(run["id"])
        return waiting

    def _run_json(self, record: RunRecord) -> dict[str, Any]:
        data = record.to_dict()
        data["notebook_path"] = relative_to_root(self.root, record.notebook)
        data["has_output"] = bool(record.output_notebook) and Path(record.output_notebook or "").is_file()
        return data


def _as_text(params: Any) -> dict[str, str]:
    """JSON values as the text `etl-nb run -p` would get, so both are typed by one check."""
    if not isinstance(params, dict):
        raise ApiError(400, "'params' must be an object of parameter names to values.")
    texts: dict[str, str] = {}
    for name, value in params.items():
        if isinstance(value, dict | list):
            raise ApiError(400, f"Parameter '{name}' must be text, a number, true/false or null.")
        texts[str(name)] = value if isinstance(value, str) else json.dumps(value)
    return texts
