"""Logs a service can ship: one JSON line per event, in one file, secrets masked; metrics in ``runs``."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from runtools import ETL_NB

from etl_nb.store import RunStore
from etl_nb.store.schedules import ScheduleStore

Run = subprocess.CompletedProcess[str]

BROKEN = """
from etl_nb import Pipeline
p = Pipeline("broken")
p.connect("lake", ".")
p.extract("orders", source="lake", path="missing.csv")
p.run().raise_for_status()
"""


def test_the_scheduler_logs_one_json_line_per_event_with_secrets_masked(
    project: Path, notebook: Callable[..., Path]
) -> None:
    nb = notebook(project / "broken.ipynb", BROKEN)
    ScheduleStore().add(
        str(nb),
        "* * * * *",
        pipeline="broken",
        alerts=["http://ops:hunter22@127.0.0.1:9/hook"],
        since=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1),
    )
    log_file = project / "logs" / "scheduler.jsonl"
    scheduler = subprocess.Popen(
        [ETL_NB, "scheduler", "--log-format", "json", "--log-file", str(log_file), "--interval", "1s"],
        cwd=project,
        env=os.environ.copy(),
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not (log_file.exists() and "alert failed" in log_file.read_text()):
        assert time.monotonic() < deadline, "no alert was tried"
        time.sleep(0.3)
    scheduler.send_signal(signal.SIGTERM)
    assert scheduler.wait(timeout=60) == 0

    text = log_file.read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    (run,) = RunStore().list_runs(pipeline="broken")
    events = [line["event"] for line in lines if line.get("run_id") == run.id]
    expected = ["run queued", "slot started", "run claimed", "run started", "step finished", "run finished"]
    assert [e for e in events if e in expected] == expected
    assert "alert failed" in events
    started = next(line for line in lines if line["event"] == "slot started")
    assert (started["pipeline"], started["run_id"]) == ("broken", run.id)
    assert started["slot"].endswith("+00:00")
    assert all({"event", "level", "time"} <= set(line) for line in lines)
    assert "hunter22" not in text
    assert "http://ops:***@127.0.0.1:9/hook" in text


def test_runs_for_one_pipeline_show_duration_and_rows_trends_and_json_lists_steps(
    project: Path, notebook: Callable[..., Path], etl_nb: Callable[..., Run]
) -> None:
    (project / "orders.csv").write_text("id,amount\n1,10\n2,20\n")
    body = (
        "from etl_nb import Pipeline\n"
        "p = Pipeline('copy')\n"
        "p.connect('lake', '.')\n"
        "p.extract('orders', source='lake', path='orders.csv')\n"
        "p.load('orders', to='lake', path='out.parquet', mode='replace')\n"
        "p.run().raise_for_status()"
    )
    nb = notebook(project / "copy.ipynb", body)
    for _ in range(2):
        assert etl_nb("run", str(nb), cwd=project).returncode == 0

    table = etl_nb("runs", "--pipeline", "copy.ipynb", cwd=project).stdout
    listed = json.loads(etl_nb("runs", "--json", cwd=project).stdout)

    assert "seconds (oldest to newest):" in table
    assert "rows    (oldest to newest): " in table
    assert "0 of 2 runs failed" in table
    assert [[s["step"] for s in r["steps"]] for r in listed] == [
        ["orders", "load:orders:lake:out.parquet"]
    ] * 2
    assert {r["rows"] for r in listed} == {2}
