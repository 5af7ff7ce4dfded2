"""Start-up: how long a person waits for the CLI and for ``%load_ext etl_nb``.

Each command runs as a fresh process, timed from its start to its exit,
beside ``python -c pass`` (the interpreter alone, the floor). ``%load_ext
etl_nb`` is timed inside a fresh IPython shell: the magic alone, not the shell.
"""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

from bench.harness import Goal, timed

NAME = "startup"
TITLE = "Start-up of the CLI and the magics"
DESCRIPTION = (
    "Each command in a fresh process, from its start to its exit, beside `python -c pass` (the "
    "interpreter alone). `etl-nb runs` and `etl-nb show` read a store holding one run. "
    "`%load_ext etl_nb` is the magic alone, timed inside a fresh IPython shell."
)
COMPETITORS = {
    "python": "`python -c pass` (the floor)",
    "import": "`python -c 'import etl_nb'`",
    "help": "`etl-nb --help`",
    "runs": "`etl-nb runs`",
    "show": "`etl-nb show RUN_ID`",
    "load_ext": "`%load_ext etl_nb` (in a shell)",
}
BASELINE = "python"
CASE = "start to exit"
CASES = [CASE]
GOALS = [
    Goal("`etl-nb --help` at most 0.10 s", CASE, "help", 0.10),
    Goal("`etl-nb runs` at most 0.40 s", CASE, "runs", 0.40),
    Goal("`etl-nb show` at most 0.40 s", CASE, "show", 0.40),
    Goal("`%load_ext etl_nb` at most 0.30 s", CASE, "load_ext", 0.30),
]
MEASURES_MEMORY = False
ONE_PROCESS = False
SIZES: dict[str, dict[str, int]] = {"small": {}, "full": {}}


@contextmanager
def prepare(size: str, workdir: Path) -> Iterator[dict[str, Any]]:
    """One recorded run in the children's store (``ETL_NB_STORE_URL``), for ``runs`` and ``show``."""
    from etl_nb import Pipeline

    p = Pipeline("startup", base_dir=workdir, store=f"sqlite:///{workdir / 'etl_nb.db'}")
    p.transform("answer", sql="SELECT 42 AS answer")
    run_id = p.run().raise_for_status().run_id
    p.close()
    yield {"run_id": run_id}


def command(competitor: str, run_id: str) -> list[str]:
    cli = str(Path(sys.executable).parent / "etl-nb")
    return {
        "python": [sys.executable, "-c", "pass"],
        "import": [sys.executable, "-c", "import etl_nb"],
        "help": [cli, "--help"],
        "runs": [cli, "runs"],
        "show": [cli, "show", run_id],
    }[competitor]


def run(competitor: str, params: dict[str, Any]) -> dict[str, Any]:
    """In the child: the command once (or the magic once, in a fresh shell here)."""
    if competitor == "load_ext":
        from IPython.testing.globalipapp import start_ipython

        shell = start_ipython()  # type: ignore[no-untyped-call]
        assert shell is not None
        with redirect_stdout(io.StringIO()):
            seconds = timed(lambda: shell.run_line_magic("load_ext", "etl_nb"))
        return {"seconds": {CASE: seconds}}
    started = time.perf_counter()
    done = subprocess.run(command(competitor, params["run_id"]), capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{competitor} failed:\n{done.stderr[-3000:]}")
    return {"seconds": {CASE: seconds}}
