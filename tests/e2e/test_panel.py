"""The panel in a real browser against a real, authenticated ``jupyter lab``.

tests/e2e/panel.mjs drives headless Chromium through playwright-core and
prints what it saw as JSON lines; these tests start it and check that, and
what the CLI then reports, as a user would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import REPO, Lab

pytestmark = pytest.mark.e2e

SCREENSHOT = REPO / "docs" / "panel.png"
# docs/panel.png is rewritten only when asked (or missing), so a test run leaves the tree clean.
UPDATE_SCREENSHOT = bool(os.environ.get("ETL_NB_UPDATE_SCREENSHOT")) or not SCREENSHOT.exists()
DRIVER_DEADLINE = 240  # seconds for the whole browser session on a busy machine


def drive(lab: Lab, tools: dict[str, str], steps: str, **extra: str) -> dict[str, dict[str, Any]]:
    """Run the browser script; its events by name (the last of each)."""
    env = {
        **os.environ,
        "LAB_URL": lab.url,
        "LAB_TOKEN": lab.token,
        "CHROMIUM": tools["chromium"],
        "STEPS": steps,
        **extra,
    }
    done = subprocess.run(
        [tools["node"], str(Path(__file__).with_name("panel.mjs"))],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=DRIVER_DEADLINE,
    )
    events = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            events[event["event"]] = event
    lab_log = lab.log.read_text(errors="replace")[-4000:]
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n--- lab log ---\n{lab_log}"
    return events


def etl_nb(lab: Lab, *args: str) -> Any:
    """The ``etl-nb`` command on the lab's project folder, its JSON output."""
    command = [str(Path(sys.executable).parent / "etl-nb"), *args, "--json"]
    done = subprocess.run(command, check=True, cwd=lab.root, env=lab.env, capture_output=True, text=True)
    return json.loads(done.stdout)


def test_the_panel_runs_the_pipeline_to_success_with_rows_and_adds_a_schedule(
    lab: Lab, browser_tools: dict[str, str], tmp_path: Path
) -> None:
    screenshot = tmp_path / "panel.png"
    events = drive(
        lab,
        browser_tools,
        "run,schedule",
        SCREENSHOT=str(screenshot),
        SCHEDULE_CRON="30 6 * * 1-5",
        SCHEDULE_TZ="Europe/Paris",
    )

    assert events["tab"]["title"] == "ETL pipelines"
    pipeline = events["pipeline"]
    expected = {"orders", "rates", "customers", "revenue", "revenue_share", "check:revenue"}
    assert expected <= set(pipeline["steps"])
    assert pipeline["edges"] >= 5
    assert ["start_date", "2026-01-01"] in pipeline["parameters"]

    run = events["run"]
    assert run["status"] == "success"
    assert re.fullmatch(r"[\d,]+ rows?", run["rows"])
    rows = {step: count for step, _status, count, _time in run["steps"]}
    assert int(rows["revenue"].replace(",", "")) > 0
    assert run["successNodes"] >= 6
    assert run["notebookLink"].endswith("/notebook?theme=light")
    assert "pageerror" not in events

    # The run the browser started is the one the CLI sees, started through the API.
    [recorded] = etl_nb(lab, "runs")
    assert recorded["id"] == run["id"]
    assert recorded["status"] == "success"
    assert recorded["trigger"] == "api"
    # The schedule added in the panel is the one `etl-nb schedule list` shows.
    [schedule] = etl_nb(lab, "schedule", "list")
    assert schedule["id"] == events["schedule"]["id"]
    assert (schedule["cron"], schedule["timezone"], schedule["pipeline"]) == (
        "30 6 * * 1-5",
        "Europe/Paris",
        "quickstart",
    )
    assert "30 6 * * 1-5" in events["schedule"]["text"]

    assert screenshot.stat().st_size > 10_000
    if UPDATE_SCREENSHOT:
        shutil.copy(screenshot, SCREENSHOT)


def test_the_real_lab_refuses_the_api_without_the_token(lab: Lab) -> None:
    for method, path in (("GET", "runs"), ("GET", "pipelines"), ("POST", "runs")):
        body = b'{"notebook": "quickstart.ipynb"}' if method == "POST" else None
        request = urllib.request.Request(f"{lab.url}/etl-nb/api/{path}", data=body, method=method)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403, (method, path)
