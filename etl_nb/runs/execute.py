"""One recorded run of a notebook, executed by papermill.

The run is opened in the store before the kernel starts; the kernel's
``%%etl`` cells see ``ETL_NB_RUN_ID`` and record each step into that run
(``store.RunRecorder``);
the run is closed here with papermill's verdict, and the executed notebook
is kept under ``$ETL_NB_HOME/.etl_nb/runs/RUN_ID/`` for inspection.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from etl_nb.errors import EtlError, PipelineError
from etl_nb.notebook.cellref import run_error
from etl_nb.project import pipeline_name, project_home
from etl_nb.runs.kernel import NOTEBOOK_ENV, EarlyKernel, ipc_kernel_manager, kernel_environment
from etl_nb.runs.params import declared_parameters
from etl_nb.runs.runtime import kernel_runtime_folder
from etl_nb.store import RunStore, default_store_url, new_run_id, private_file, private_folder

__all__ = ["NOTEBOOK_ENV", "NotebookRun", "execute_notebook", "home", "runs_folder"]


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
    kernel: EarlyKernel | None = None,
) -> NotebookRun:
    """Run ``notebook`` with papermill, injecting ``params``, and record the run.

    ``recorded``: the run is already in the store (queued, then claimed by
    ``etl_nb.runs.executor``), so its start is not recorded again.
    ``kernel``: a kernel started early for this run (``etl-nb run``); it runs
    the notebook when it is the kernel papermill would start (else it is
    closed and papermill starts one). It is asked to stop once the notebook
    ran; the caller closes it (``EarlyKernel.close``) once the run is shown.
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
    nb, defaults = _prepared(source, defaults=not recorded)  # unreadable: fails before any folder exists
    private_folder(output.parent)  # executed notebooks hold data: owner-only
    private_file(output)  # papermill writes into it, keeping its mode
    # Record what the run really used: the parameters cell's values, then -p over them.
    values = {**defaults, **(params or {})}
    if not recorded:
        store.start_run(run_id, name, values, notebook=str(source), trigger=trigger)
    status, error = "success", None
    env = kernel_environment(run_id, store_url, source)
    kernel_name = nb.metadata.get("kernelspec", {}).get("name")
    if kernel is not None and not kernel.fits(kernel_name, source.parent, env):
        kernel.close()
        kernel = None
    try:
        with _kernel_environment(env), _kernel_options(kernel) as options:
            papermill.execute_notebook(
                nb,
                str(output),
                parameters=dict(params or {}),
                cwd=str(source.parent),
                progress_bar=progress,
                execution_timeout=timeout,
                log_output=False,
                **options,
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


def _prepared(source: Path, *, defaults: bool) -> tuple[Any, dict[str, Any]]:
    """The notebook with the closing cell of a recorded run, and (``defaults``) its parameters' defaults.

    A queued run recorded its parameters when it was checked: it needs no defaults, nor a second read.
    """
    import nbformat

    try:
        nb = nbformat.read(source, as_version=4)  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise PipelineError(f"'{source.name}' is not a readable notebook ({exc}). Check the file.") from None
    finish = nbformat.v4.new_code_cell(FINISH_CELL)  # type: ignore[no-untyped-call]
    finish.metadata["tags"] = ["etl-nb-finish"]
    nb.cells.append(finish)
    if not defaults:
        return nb, {}
    try:
        return nb, dict(declared_parameters(source).parameters)  # read once per version of the file
    except EtlError:
        return nb, {}


def _execution_error(exc: Any, executed: Path) -> str:
    """The failing cell's error as the user saw it, the cell named as a person counts it (``cellref``)."""
    import nbformat

    try:
        nb = nbformat.read(executed, as_version=4)  # type: ignore[no-untyped-call]
    except Exception:  # papermill could not write it: the cell goes unnamed
        nb = {}
    return run_error(nb, exc.cell_index, exc.ename, exc.evalue, exc.traceback)


@contextmanager
def _kernel_options(kernel: EarlyKernel | None) -> Iterator[dict[str, Any]]:
    """papermill's kernel options: the early kernel (asked to stop afterwards), else one papermill starts."""
    if kernel is not None:
        try:
            yield {"km": kernel.manager}
        finally:
            kernel.ask_to_stop()
        return
    with kernel_runtime_folder() as runtime:
        yield {"kernel_manager_class": ipc_kernel_manager(runtime)}


@contextmanager
def _kernel_environment(env: Mapping[str, str]) -> Iterator[None]:
    """Our environment with ``env`` over it while papermill runs: a kernel papermill starts inherits it."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
