"""``etl-nb run`` starts the run's kernel before it checks and records the run (``etl_nb.runs.kernel``).

The kernel must be the one papermill would have started for the run (its run id,
folder and notebook), it must not outlive the command, and a run refused before it
starts leaves no kernel behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import nbformat
import psutil

from etl_nb.runs.execute import execute_notebook
from etl_nb.runs.kernel import EarlyKernel, notebook_kernel_name
from etl_nb.store import RunStore

Run = subprocess.CompletedProcess[str]

WHERE = """\
import json, os
with open("where.json", "w") as f:
    json.dump({"run_id": os.environ["ETL_NB_RUN_ID"], "notebook": os.environ["ETL_NB_NOTEBOOK"],
               "cwd": os.getcwd(), "pid": os.getpid(), "step": step}, f)"""


def _notebook(path: Path, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('step = "one"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(nbformat.v4.new_code_cell(c) for c in cells)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _kernels_of(pid: int) -> list[psutil.Process]:
    """Kernel processes started by the etl-nb process ``pid`` (their connection file is in its folder)."""
    mark = f"etl-nb-kernel-{pid}-"
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(mark in part for part in process.info["cmdline"] or []):
            found.append(process)
    return found


def _run(*args: str, cwd: Path) -> tuple[Run, int]:
    command = [str(Path(sys.executable).parent / "etl-nb"), *args]
    child = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    out, err = child.communicate(timeout=180)
    return subprocess.CompletedProcess(command, child.returncode, out, err), child.pid


def test_the_run_happens_in_a_kernel_started_for_it(project: Path, etl_nb: Callable[..., Run]) -> None:
    (project / "sub").mkdir()
    notebook = _notebook(project / "sub" / "where.ipynb", WHERE)

    done, pid = _run("run", "sub/where.ipynb", "-p", "step", "two", cwd=project)

    assert done.returncode == 0, done.stderr
    where = json.loads((project / "sub" / "where.json").read_text())
    runs = json.loads(etl_nb("runs", "--json", cwd=project).stdout)
    assert [r["id"] for r in runs] == [where["run_id"]]  # the kernel records into the run shown
    assert runs[0]["status"] == "success"
    assert runs[0]["params"] == {"step": "two"}
    assert where["step"] == "two"  # -p reached the kernel
    assert Path(where["notebook"]) == notebook.resolve()
    assert Path(where["cwd"]) == notebook.parent.resolve()  # as papermill runs it: in the notebook's folder
    assert not psutil.pid_exists(where["pid"]) or psutil.Process(where["pid"]).status() == "zombie"
    assert not _kernels_of(pid)
    assert not list(Path(tempfile.gettempdir()).glob(f"etl-nb-kernel-{pid}-*"))


def test_refused_parameters_leave_no_kernel_and_no_run(project: Path, etl_nb: Callable[..., Run]) -> None:
    _notebook(project / "where.ipynb", WHERE)

    done, pid = _run("run", "where.ipynb", "-p", "stpe", "two", cwd=project)

    assert done.returncode == 2
    assert "Unknown parameter 'stpe'" in done.stderr
    assert not (project / "where.json").exists()
    assert json.loads(etl_nb("runs", "--json", cwd=project).stdout) == []
    assert not _kernels_of(pid)
    assert not list(Path(tempfile.gettempdir()).glob(f"etl-nb-kernel-{pid}-*"))


def test_papermill_runs_the_notebook_in_the_early_kernel(project: Path) -> None:
    notebook = _notebook(project / "where.ipynb", WHERE)
    store = RunStore()
    kernel = EarlyKernel.start(notebook.resolve(), store.url)
    assert kernel is not None
    pid = kernel.manager.provisioner.process.pid

    result = execute_notebook(notebook, {"step": "two"}, store=store, run_id=kernel.run_id, kernel=kernel)
    kernel.close()

    assert result.status == "success", result.error
    where = json.loads((project / "where.json").read_text())
    assert where["pid"] == pid  # the kernel started early ran the cells
    assert (where["run_id"], where["step"]) == (result.run_id, "two")
    record = store.get_run(result.run_id)
    assert record is not None
    assert record.status == "success"
    assert record.output_notebook == str(result.output_notebook)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


def test_a_kernel_started_for_another_run_is_not_used(project: Path) -> None:
    """An early kernel that is not the run's (another id) is shut down; papermill starts the run's own."""
    notebook = _notebook(project / "where.ipynb", WHERE)
    store = RunStore()
    kernel = EarlyKernel.start(notebook.resolve(), store.url)
    assert kernel is not None

    result = execute_notebook(notebook, {"step": "three"}, store=store, kernel=kernel)

    assert result.status == "success", result.error
    where = json.loads((project / "where.json").read_text())
    assert where["run_id"] == result.run_id != kernel.run_id
    assert where["step"] == "three"
    assert kernel.stopped
    assert not kernel.manager.has_kernel


def test_a_notebook_naming_no_kernel_gets_no_early_kernel(project: Path) -> None:
    notebook = project / "bare.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), notebook)
    assert notebook_kernel_name(notebook) is None
    assert EarlyKernel.start(notebook, RunStore().url) is None
    (project / "broken.ipynb").write_text("{not json")
    assert notebook_kernel_name(project / "broken.ipynb") is None
