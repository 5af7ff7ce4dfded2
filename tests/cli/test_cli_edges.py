"""The edges of the ``etl-nb`` command line: pipes that close early, unknown options, huge numbers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from etl_nb.results import StepResult
from etl_nb.store import RunStore, new_run_id

Run = subprocess.CompletedProcess[str]
ETL_NB = str(Path(sys.executable).parent / "etl-nb")


@pytest.fixture
def many_runs(project: Path) -> list[str]:
    """More recorded runs than a pipe holds when printed as JSON."""
    store = RunStore()
    ids = []
    for _ in range(150):
        run_id = new_run_id()
        store.start_run(run_id, "many", {"note": "x" * 300}, notebook="many.ipynb", trigger="manual")
        steps = [StepResult(f"step_{n}", "extract", "success", rows=n) for n in range(8)]
        store.finish_run(run_id, "success", steps, error=None)
        ids.append(run_id)
    return ids


@pytest.mark.parametrize(
    "args", [["runs", "--json", "--limit", "150"], ["runs", "--limit", "150"], ["show", "{id}", "--json"]]
)
def test_output_piped_into_head_ends_quietly(project: Path, many_runs: list[str], args: list[str]) -> None:
    command = " ".join([ETL_NB, *(many_runs[0] if a == "{id}" else a for a in args)])
    done = subprocess.run(
        f"{command} | head -n 1",
        shell=True,
        cwd=project,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout.count("\n") == 1
    assert done.stderr == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "etl-nb: error: unknown option '--bogus'. See 'etl-nb --help'."),
        (["runs", "--bogus"], "etl-nb: error: unknown option '--bogus'. See 'etl-nb --help'."),
        (["runs", "extra"], "etl-nb: error: unexpected argument 'extra'. See 'etl-nb --help'."),
        ([], "etl-nb: error: give a command: run, runs, show, "),
        (
            ["runs", "--limit", "99999999999999999999"],
            "etl-nb: error: argument --limit: '99999999999999999999' is too large: give at most "
            "1,000,000,000. See 'etl-nb runs --help'.",
        ),
        (["runs", "--limit", "²"], "etl-nb: error: argument --limit: '²' is not a whole number above 0."),
    ],
)
def test_a_mistake_on_the_command_line_is_one_line_naming_it(
    project: Path, args: list[str], message: str, etl_nb: Callable[..., Run]
) -> None:
    done = etl_nb(*args, cwd=project)

    assert done.returncode == 2
    assert done.stderr.startswith(message)
    assert done.stderr.count("\n") == 1
