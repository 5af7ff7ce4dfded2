"""Recorded runs: ``etl-nb run`` beside bare ``papermill``, and Celery throughput.

1. The overhead of a recorded run: the same one-step notebook run by
   ``papermill NB OUT`` and by ``etl-nb run NB`` (parameters check, queued
   run, lease, step records), interleaved round by round; prints the median
   seconds and the ratio (goal: at most 1.1x).
2. With ``--celery``: how many queued one-step runs two local Celery workers
   (``--concurrency 1`` each) complete per minute, with the store on
   PostgreSQL (``ETL_NB_TEST_PG_URL``) and the broker on Redis
   (``ETL_NB_TEST_REDIS_URL``). Each run starts a kernel, which is where the
   time goes: the bookkeeping is a few short SQL statements per run.

    python bench/bench_runs.py [--rounds 5] [--celery --runs 20]
    python bench/bench_runs.py --rounds 1 --celery --runs 2       # a tiny smoke run
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

BIN = Path(sys.executable).parent
PG_URL = os.environ.get("ETL_NB_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("ETL_NB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

STEP = """
from etl_nb import Pipeline
p = Pipeline("bench")
p.connect("lake", ".")
p.extract("orders", source="lake", path="orders.csv")
p.load("orders", to="lake", path=f"out-{n}.parquet", mode="replace")
p.run().raise_for_status()
"""


def make_project(folder: Path) -> Path:
    """A project with a small CSV and a one-step notebook; returns the notebook."""
    import nbformat

    rows = "\n".join(f"{i},{i * 3 % 97}" for i in range(1000))
    (folder / "orders.csv").write_text("id,amount\n" + rows + "\n")
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("n = 0")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(STEP)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "bench.ipynb"
    nbformat.write(nb, path)
    return path


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def overhead(rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="etl_nb_bench_") as tmp:
        folder = Path(tmp)
        notebook = make_project(folder)
        env = {**os.environ, "ETL_NB_HOME": str(folder)}
        env.pop("ETL_NB_STORE_URL", None)
        times: dict[str, list[float]] = {"papermill": [], "etl-nb run": []}
        for r in range(rounds):
            times["papermill"].append(
                timed(
                    [str(BIN / "papermill"), str(notebook), str(folder / "pm.ipynb"), "-p", "n", str(r)],
                    folder,
                    env,
                )
            )
            times["etl-nb run"].append(
                timed([str(BIN / "etl-nb"), "run", str(notebook), "-p", "n", str(r)], folder, env)
            )
        medians = {name: statistics.median(values) for name, values in times.items()}
        for name, median in medians.items():
            print(f"{name:>12}: median {median:.2f}s over {rounds} round(s)")
        print(f"{'ratio':>12}: {medians['etl-nb run'] / medians['papermill']:.2f}x (goal: at most 1.1x)")


def celery_throughput(count: int) -> None:
    import sqlalchemy as sa

    database = f"etl_nb_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
    store_url = sa.engine.make_url(PG_URL).set(database=database).render_as_string(hide_password=False)
    folder = Path(tempfile.mkdtemp(prefix="etl_nb_bench_celery_"))
    env = {
        **os.environ,
        "ETL_NB_HOME": str(folder),
        "ETL_NB_STORE_URL": store_url,
        "ETL_NB_BROKER_URL": REDIS_URL,
        "ETL_NB_CELERY_QUEUE": f"etl_nb_bench_{uuid.uuid4().hex[:6]}",
    }
    workers: list[subprocess.Popen[bytes]] = []
    try:
        notebook = make_project(folder)
        workers = [
            subprocess.Popen(
                [str(BIN / "etl-nb"), "worker", "--concurrency", "1"],
                cwd=folder,
                env=env,
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(2)
        ]
        os.environ.update(env)
        from etl_nb.runs import submit_run
        from etl_nb.store.queue import RunQueue

        started = time.perf_counter()
        ids = [submit_run(notebook, {"n": str(i)}, trigger="api", backend="celery") for i in range(count)]
        queue = RunQueue()
        while any(queue.status(run_id) in ("queued", "running") for run_id in ids):
            time.sleep(0.2)
        seconds = time.perf_counter() - started
        good = sum(queue.status(run_id) == "success" for run_id in ids)
        print(
            f"celery: {good} of {count} runs succeeded in {seconds:.1f}s with 2 workers: "
            f"{count / seconds * 60:.1f} runs/minute (incl. worker start-up)"
        )
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait()
        from etl_nb.store.runs import _engines

        for engine in _engines.values():
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--celery", action="store_true", help="also measure two Celery workers")
    parser.add_argument("--runs", type=int, default=20, help="runs queued for the Celery measure")
    args = parser.parse_args()
    overhead(args.rounds)
    if args.celery:
        celery_throughput(args.runs)


if __name__ == "__main__":
    main()
