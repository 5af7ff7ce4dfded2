"""One recorded run of a notebook, executed by papermill.

The run is opened in the store before the kernel starts; the kernel's
``%%etl`` cells see ``ETL_NB_RUN_ID`` and record each step into that run
(``store.RunRecorder``);
the run is closed here with papermill's verdict, and the executed notebook
is kept under ``$ETL_NB_HOME/.etl_nb/runs/RUN_ID/`` for inspection.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from etl_nb.errors import EtlError, PipelineError
from etl_nb.notebook.cellref import run_error
from etl_nb.project import pipeline_name, project_home
from etl_nb.runs.runtime import kernel_runtime_folder
from etl_nb.store import RUN_ID_ENV, RunStore, default_store_url, new_run_id, private_file, private_folder

NOTEBOOK_ENV = "ETL_NB_NOTEBOOK"  # the magics name their pipeline after it


@dataclass(frozen=True)
class NotebookRun:
    """The outcome of one recorded notebook run."""

    run_id: str
    status: str
    output_notebook: Path
    error: str | None = None


def home() -> Path:
    """The project folder (``etl_nb.project``): ``ETL_NB_HOME``, else found from the current folder."""
    return project_home()


def runs_folder(run_id: str) -> Path:
    """Where a run's executed notebook is kept."""
    return home() / ".etl_nb" / "runs" / run_id


def execute_notebook(
    notebook: str | Path,
    params: Mapping[str, Any] | None = None,
    *,
    store: RunStore | None = None,
    run_id: str | None = None,
    trigger: str = "manual",
    timeout: float | None = None,
    progress: bool = False,
    recorded: bool = False,
) -> NotebookRun:
    """Run ``notebook`` with papermill, injecting ``params``, and record the run.

    ``recorded``: the run is already in the store (queued, then claimed by
    ``etl_nb.runs.executor``), so its start is not recorded again.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = Path(notebook).resolve()
    if not source.is_file():
        raise PipelineError(f"Notebook '{notebook}' does not exist. Check the path.")
    store_url = store.url if store else default_store_url()
    store = store or RunStore(store_url)
    run_id = run_id or new_run_id()
    output = runs_folder(run_id) / source.name
    name = pipeline_name(source)
    nb, defaults = _prepared(source)  # an unreadable notebook fails here, before any folder exists
    private_folder(output.parent)  # executed notebooks hold data: owner-only
    private_file(output)  # papermill writes into it, keeping its mode
    # Record what the run really used: the parameters cell's values, then -p over them.
    values = {**defaults, **(params or {})}
    if not recorded:
        store.start_run(run_id, name, values, notebook=str(source), trigger=trigger)
    status, error = "success", None
    try:
        with _kernel_environment(run_id, store_url, source), kernel_runtime_folder() as runtime:
            papermill.execute_notebook(
                nb,
                str(output),
                parameters=dict(params or {}),
                cwd=str(source.parent),
                progress_bar=progress,
                execution_timeout=timeout,
                log_output=False,
                kernel_manager_class=_ipc_kernel_manager(runtime),
            )
    except PapermillExecutionError as exc:
        status, error = "failed", _execution_error(exc, output)
    except Exception as exc:  # the kernel could not start, the notebook is not JSON, ...
        status, error = "failed", f"{exc.__class__.__name__}: {exc}"
    store.finish_run(run_id, status, None, error=error, output_notebook=str(output))
    return NotebookRun(run_id=run_id, status=status, output_notebook=output, error=error)


FINISH_CELL = """\
# Added by etl-nb run: %%etl cells only declared their steps, so the pipeline
# runs here once (atomic loads, incremental state) unless %etl run just ran it.
import etl_nb.notebook.magics

etl_nb.notebook.magics.finish_recorded_run()"""


def _prepared(source: Path) -> tuple[Any, dict[str, Any]]:
    """The notebook with the closing cell of a recorded run, and its parameters' defaults."""
    import nbformat

    try:
        nb = nbformat.read(source, as_version=4)  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise PipelineError(f"'{source.name}' is not a readable notebook ({exc}). Check the file.") from None
    finish = nbformat.v4.new_code_cell(FINISH_CELL)  # type: ignore[no-untyped-call]
    finish.metadata["tags"] = ["etl-nb-finish"]
    nb.cells.append(finish)
    try:
        # The reader brings DuckDB (its SQL parser): imported when a run starts, so that
        # `etl-nb runs` and `show`, which reach this module, start without it.
        from etl_nb.notebook.reader import read_notebook

        defaults = dict(read_notebook(source).parameters)
    except EtlError:
        defaults = {}
    return nb, defaults


def _ipc_kernel_manager(runtime: Path) -> type:
    """A kernel manager on local sockets: no TCP port, and no plain-text warning on every run.

    Its connection file and sockets live in ``runtime``, the run's own folder,
    so kernels started side by side in one notebook folder never collide.
    """
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class IpcKernelManager(AsyncKernelManager):
        @default("transport")
        def _default_transport(self) -> str:
            return "ipc"

        @default("connection_file")
        def _default_connection_file(self) -> str:
            return str(runtime / "kernel.json")

        @default("ip")
        def _default_ip(self) -> str:
            return str(runtime / "kernel-ipc")

    return IpcKernelManager


def _execution_error(exc: Any, executed: Path) -> str:
    """The failing cell's error as the user saw it, the cell named as a person counts it (``cellref``)."""
    import nbformat

    try:
        nb = nbformat.read(executed, as_version=4)  # type: ignore[no-untyped-call]
    except Exception:  # papermill could not write it: the cell goes unnamed
        nb = {}
    return run_error(nb, exc.cell_index, exc.ename, exc.evalue, exc.traceback)


@contextmanager
def _kernel_environment(run_id: str, store_url: str, notebook: Path) -> Iterator[None]:
    """Environment the kernel inherits: the run to record into, the store, our Python first."""
    saved = dict(os.environ)
    os.environ[RUN_ID_ENV] = run_id
    os.environ[NOTEBOOK_ENV] = str(notebook)
    os.environ["ETL_NB_STORE_URL"] = store_url
    os.environ["ETL_NB_HOME"] = str(home())
    # The stock "python3" kernelspec starts `python` from PATH: make it ours.
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
