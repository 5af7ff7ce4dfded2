"""Starting a recorded run in the background: the one place the API hands a run over.

``RunLauncher.submit`` picks the run id up front, starts the run and returns
at once. The stock ``SubprocessLauncher`` runs ``execute_notebook`` in a
child Python process (a papermill run changes the process environment, so
it must not run inside the Jupyter server). Until the child has opened the
run in the store, ``pending`` answers for it, as ``queued``; a child that
died before that is reported ``failed`` with the end of its output.

When ``etl_nb.runs.submit_run`` exists, a launcher calling it replaces this
one (``EtlNbApp.launcher_class``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from etl_nb.errors import EtlError
from etl_nb.notebook.reader import pipeline_name
from etl_nb.pipeline import new_run_id
from etl_nb.runs.execute import execute_notebook

_LOG_TAIL = 2000  # characters of a dead child's output kept as the run's error


class RunLauncher:
    """Starts runs of notebooks in the project ``home``, recording into the store at ``store_url``."""

    def __init__(self, home: Path, store_url: str) -> None:
        self.home = home
        self.store_url = store_url

    def submit(self, notebook: Path, params: Mapping[str, Any], *, trigger: str) -> str:
        """Start a recorded run of ``notebook`` with typed ``params``; return its id at once."""
        raise NotImplementedError

    def pending(self, run_id: str) -> dict[str, Any] | None:
        """A run this launcher started that the store does not hold yet, as API JSON (or None)."""
        return None

    def pending_runs(self) -> list[dict[str, Any]]:
        """Every such run, newest first."""
        return []

    def forget(self, run_id: str) -> None:
        """The store holds ``run_id`` now: stop answering for it."""


@dataclass
class _Child:
    process: subprocess.Popen[bytes]
    notebook: Path
    params: dict[str, Any]
    trigger: str
    started_at: dt.datetime
    log: Path


class SubprocessLauncher(RunLauncher):
    """Each run in its own ``python -m etl_nb.server.launch`` process."""

    def __init__(self, home: Path, store_url: str) -> None:
        super().__init__(home, store_url)
        self._children: dict[str, _Child] = {}
        self._lock = threading.Lock()

    def submit(self, notebook: Path, params: Mapping[str, Any], *, trigger: str) -> str:
        run_id = new_run_id()
        log = self.home / ".etl_nb" / "runs" / run_id / "launch.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "ETL_NB_HOME": str(self.home), "ETL_NB_STORE_URL": self.store_url}
        env.pop("ETL_NB_RUN_ID", None)  # a run of its own, never a part of another
        command = [sys.executable, "-m", "etl_nb.server.launch", str(notebook), run_id, json.dumps(params)]
        with log.open("wb") as output:
            process = subprocess.Popen(  # our own interpreter and module, no shell
                [*command, trigger],
                cwd=self.home,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C to the lab does not kill a run half-way
            )
        with self._lock:
            self._children[run_id] = _Child(process, notebook, dict(params), trigger, _now(), log)
        return run_id

    def pending(self, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            child = self._children.get(run_id)
        return None if child is None else self._json(run_id, child)

    def pending_runs(self) -> list[dict[str, Any]]:
        with self._lock:
            children = list(self._children.items())
        return [self._json(run_id, child) for run_id, child in reversed(children)]

    def forget(self, run_id: str) -> None:
        with self._lock:
            child = self._children.pop(run_id, None)
        if child is not None and child.process.poll() is None:
            # Still running: keep a thread to reap it, so no zombie is left behind.
            threading.Thread(target=child.process.wait, daemon=True).start()

    def _json(self, run_id: str, child: _Child) -> dict[str, Any]:
        code = child.process.poll()
        failed = code is not None
        error = None
        if failed:
            text = child.log.read_text(errors="replace") if child.log.exists() else ""
            error = text[-_LOG_TAIL:].strip() or f"The run's process ended with exit code {code}."
        return {
            "id": run_id,
            "pipeline": pipeline_name(child.notebook),
            "status": "failed" if failed else "queued",
            "params": child.params,
            "started_at": child.started_at.isoformat(),
            "finished_at": None,
            "seconds": None,
            "rows": None,
            "error": error,
            "notebook": str(child.notebook),
            "output_notebook": None,
            "trigger": child.trigger,
            "steps": [],
        }


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def main(argv: Sequence[str] | None = None) -> int:
    """The child process: ``NOTEBOOK RUN_ID PARAMS_JSON TRIGGER`` → one recorded run; 0 if it succeeded."""
    notebook, run_id, params, trigger = argv if argv is not None else sys.argv[1:]
    try:
        result = execute_notebook(notebook, json.loads(params), run_id=run_id, trigger=trigger)
    except EtlError as exc:  # before the run was opened: the panel shows this line as the error
        print(exc.message, file=sys.stderr)
        return 2
    return 0 if result.status == "success" else 1


if __name__ == "__main__":
    raise SystemExit(main())
