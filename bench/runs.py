"""Runs: a recorded ``etl-nb run`` beside bare papermill on the same notebook.

The notebook is ``notebooks/quickstart.ipynb`` with its data, copied into the
run's project folder. Both commands start the same kernel and run every
cell; ``etl-nb run`` also checks the parameters, records the run and its
steps in the store and keeps the executed notebook. Timed from the command's
start to its exit, as a user waits for it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.harness import REPO, Goal

NAME = "runs"
TITLE = "A recorded notebook run"
DESCRIPTION = (
    "`etl-nb run quickstart.ipynb -p start_date 2026-01-01` beside `papermill quickstart.ipynb out.ipynb "
    "-p start_date 2026-01-01` on the example notebook (three extracts, two transforms, a check, a "
    "Parquet load), timed from the command's start to its exit; the peak memory includes the kernel."
)
COMPETITORS = {"etl_nb": "`etl-nb run`", "papermill": "bare `papermill`"}
BASELINE = "papermill"
CASE = "run the example notebook"
CASES = [CASE]
GOALS = [Goal("`etl-nb run` at most 1.1× bare papermill", CASE, "etl_nb", 1.1, ("papermill",))]
MEASURES_MEMORY = True
ONE_PROCESS = False
SIZES: dict[str, dict[str, int]] = {"small": {}, "full": {}}
IMPORTS = {"papermill": ("papermill",)}


@contextmanager
def prepare(size: str, workdir: Path) -> Iterator[dict[str, Any]]:
    """A project folder holding the example notebook and its data."""
    project = workdir / "runs_project"
    project.mkdir()
    shutil.copy(REPO / "notebooks" / "quickstart.ipynb", project)
    shutil.copytree(REPO / "notebooks" / "data", project / "data", ignore=shutil.ignore_patterns("output"))
    yield {"project": str(project)}


def command(competitor: str, project: Path) -> list[str]:
    """The command line a user types for ``competitor``."""
    scripts = Path(sys.executable).parent
    if competitor == "etl_nb":
        return [str(scripts / "etl-nb"), "run", "quickstart.ipynb", "-p", "start_date", "2026-01-01"]
    out = project / "papermill_out.ipynb"
    return [str(scripts / "papermill"), "quickstart.ipynb", str(out), "-p", "start_date", "2026-01-01"]


def run(competitor: str, params: dict[str, Any]) -> dict[str, Any]:
    """In the child: run the command once and time it to its exit."""
    project = Path(params["project"])
    started = time.perf_counter()
    done = subprocess.run(
        command(competitor, project), cwd=project, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{competitor} failed:\n{done.stderr[-3000:]}")
    return {"seconds": {CASE: seconds}}
