"""Runs side by side: each kernel gets its own runtime folder, so runs in one folder never collide."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from etl_nb.runs.runtime import sweep_stale_runtime_folders

Run = subprocess.CompletedProcess[str]


def test_eight_runs_of_two_notebooks_in_one_folder_all_succeed(
    project: Path, notebook: Callable[..., Path], etl_nb: Callable[..., Run]
) -> None:
    first = notebook(project / "first.ipynb", "open(f'first-{n}.txt', 'w').write(str(n))", "n = 0")
    second = notebook(project / "second.ipynb", "open(f'second-{n}.txt', 'w').write(str(n))", "n = 0")
    rounds, per_round = 2, 8

    with ThreadPoolExecutor(per_round) as pool:
        for r in range(rounds):
            jobs = [
                pool.submit(
                    etl_nb, "run", str(first if i % 2 else second), "-p", "n", str(r * 10 + i), cwd=project
                )
                for i in range(per_round)
            ]
            results = [job.result() for job in jobs]
            assert [d.returncode for d in results] == [0] * per_round, [d.stderr for d in results]

    runs = json.loads(etl_nb("runs", "--json", "--limit", "100", cwd=project).stdout)
    assert len(runs) == rounds * per_round
    assert {r["status"] for r in runs} == {"success"}
    assert not list(project.glob("kernel-ipc*"))
    assert not list(project.glob("kernel*.json"))


def test_a_killed_runs_kernel_folder_is_swept_by_the_next_run(
    project: Path, notebook: Callable[..., Path], etl_nb: Callable[..., Run]
) -> None:
    dead_pid = subprocess.Popen(["true"])
    dead_pid.wait()  # exited: its pid names no process
    left_behind = Path(tempfile.gettempdir()) / f"etl-nb-kernel-{dead_pid.pid}-leftover"
    left_behind.mkdir()
    (left_behind / "kernel-ipc-1").write_text("")

    done = etl_nb("run", str(notebook(project / "nb.ipynb", "x = 1")), cwd=project)

    assert done.returncode == 0, done.stderr
    assert not left_behind.exists()
    assert left_behind not in sweep_stale_runtime_folders()
