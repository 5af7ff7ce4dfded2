"""The parts every workload shares: sizes, goals, samples, and measuring one child process.

A competitor's run happens in a fresh child process (``bench/run.py --child
WORKLOAD COMPETITOR``), so its imports, caches and memory are its own. The
child times only the work (each tool's import is paid before the clock, once
per process, by any user) and prints its seconds per case as one JSON line;
the parent samples the child's process tree with psutil meanwhile, so the
peak memory includes kernels and other processes the competitor starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

REPO = Path(__file__).resolve().parents[1]
RUN_PY = REPO / "bench" / "run.py"
SAMPLE_EVERY = 0.01  # seconds between two RSS samples of a child's process tree
# The child's answer line; peers print their own lines too (JupySQL says "Closing etl" at exit).
ANSWER = "bench-answer: "


@dataclass(frozen=True)
class Goal:
    """A goal from issue 13's table: a ratio to other competitors, or a time limit.

    ``against`` empty means ``limit`` is seconds (an absolute goal); otherwise
    the goal is ``competitor / min(against) <= limit`` on ``metric``.
    """

    text: str
    case: str
    competitor: str
    limit: float
    against: tuple[str, ...] = ()
    metric: str = "seconds"  # or "peak_mib"


@dataclass
class Sample:
    """One competitor's run in one round: seconds per case, peak memory, extra figures."""

    competitor: str
    round: int
    seconds: dict[str, float]
    peak_mib: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Workload(Protocol):
    """What a workload module (bench/files.py, ...) defines."""

    NAME: str
    TITLE: str
    DESCRIPTION: str
    COMPETITORS: dict[str, str]  # key -> label, in table order
    BASELINE: str
    CASES: list[str]
    GOALS: list[Goal]
    MEASURES_MEMORY: bool
    ONE_PROCESS: bool  # every competitor in one child, interleaved there (the cells)

    SIZES: dict[str, dict[str, int]]  # "small" / "full" -> the workload's own size figures

    def prepare(self, size: str, workdir: Path) -> AbstractContextManager[dict[str, Any]]: ...

    def run(self, competitor: str, params: dict[str, Any]) -> dict[str, Any]: ...


def rotated(items: list[str], by: int) -> list[str]:
    """``items`` started at position ``by``: each round starts with another competitor."""
    by %= len(items)
    return items[by:] + items[:by]


def timed(action: Callable[[], Any]) -> float:
    """Seconds ``action`` took."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def own_peak_mib() -> float:
    """Peak RSS of this process since it started, in MiB.

    Read from ``VmHWM``: ``getrusage``'s ``ru_maxrss`` keeps the high-water mark
    of the parent it was forked from across ``exec``, so a child of a big
    harness would report the harness's size.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _TreeSampler:
    """Samples the summed RSS of a process and its descendants until stopped."""

    def __init__(self, pid: int) -> None:
        import psutil  # the parent's alone: children need not load it before their clock starts

        self._root = psutil.Process(pid)
        self._stop = threading.Event()
        self.peak_bytes = 0
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                tree = [self._root, *self._root.children(recursive=True)]
                total = 0
                for process in tree:
                    # A short-lived child may end between listing and reading.
                    with contextlib.suppress(psutil.Error):
                        total += process.memory_info().rss
                self.peak_bytes = max(self.peak_bytes, total)
            except psutil.Error:
                return
            self._stop.wait(SAMPLE_EVERY)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_bytes / 2**20


def run_child(
    workload: str, competitor: str, params: Mapping[str, Any], env: Mapping[str, str]
) -> dict[str, Any]:
    """Run one competitor in a fresh process; its JSON answer plus ``peak_mib`` of its process tree."""
    command = [sys.executable, str(RUN_PY), "--child", workload, competitor, json.dumps(params)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env}
    )
    sampler = _TreeSampler(process.pid)
    stdout, stderr = process.communicate()
    sampled = sampler.stop()
    if process.returncode != 0:
        raise RuntimeError(f"{workload}/{competitor} failed (exit {process.returncode}):\n{stderr[-4000:]}")
    line = next((x for x in reversed(stdout.splitlines()) if x.startswith(ANSWER)), None)
    if line is None:
        raise RuntimeError(f"{workload}/{competitor} printed no answer:\n{stdout[-2000:]}{stderr[-2000:]}")
    answer: dict[str, Any] = json.loads(line.removeprefix(ANSWER))
    answer["peak_mib"] = max(sampled, answer.pop("own_peak_mib", 0.0))
    return answer


def child_main(workload: Workload, competitor: str, params: dict[str, Any]) -> None:
    """In the child: run, then print the answer as the last stdout line."""
    answer = workload.run(competitor, params)
    answer["own_peak_mib"] = own_peak_mib()
    print(ANSWER + json.dumps(answer), flush=True)


def sample_from(answer: Mapping[str, Any], competitor: str, round_: int) -> Sample:
    """A Sample from a child's answer ``{"seconds": {...}, "extra": {...}, "peak_mib": ...}``."""
    return Sample(
        competitor=competitor,
        round=round_,
        seconds=dict(answer["seconds"]),
        peak_mib=answer.get("peak_mib"),
        extra=dict(answer.get("extra", {})),
    )


def quiet_env(workdir: Path) -> dict[str, str]:
    """Environment for children: their own project folder, Jupyter folders and no telemetry."""
    folders = {}
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        folder = workdir / ".jupyter" / name.lower()
        folder.mkdir(parents=True, exist_ok=True)
        folders[name] = str(folder)
    return {
        **folders,
        "ETL_NB_HOME": str(workdir),
        "ETL_NB_STORE_URL": f"sqlite:///{workdir / 'etl_nb.db'}",
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "PLOOMBER_STATS_ENABLED": "false",
        "RUNTIME__LOG_LEVEL": "ERROR",
        "DLT_DATA_DIR": str(workdir / ".dlt"),
        "PYTHONWARNINGS": "ignore",
    }
