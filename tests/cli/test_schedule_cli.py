"""``etl-nb schedule add/list/pause/resume/remove``: the next slot in the zone and UTC, clear refusals."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Run = subprocess.CompletedProcess[str]


@pytest.fixture
def nightly(project: Path, api_notebook: Callable[..., Path]) -> Path:
    return api_notebook(
        project / "nightly.ipynb", "print(start_date, limit)", 'start_date = "2026-01-01"\nlimit = 10'
    )


def test_a_schedule_lists_its_next_slot_in_its_zone_and_in_utc(
    project: Path, nightly: Path, etl_nb: Callable[..., Run]
) -> None:
    added = etl_nb(
        "schedule",
        "add",
        str(nightly),
        "--cron",
        "0 6 * * *",
        "--tz",
        "Europe/Paris",
        "-p",
        "limit",
        "25",
        "--timeout",
        "30m",
        "--retries",
        "2",
        "--alert",
        "https://hooks.example/${HOOK}",
        cwd=project,
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("added schedule ")

    listed = json.loads(etl_nb("schedule", "list", "--json", cwd=project).stdout)

    assert len(listed) == 1
    schedule = listed[0]
    assert schedule["notebook"] == "nightly.ipynb"  # relative to the project: the project can move
    assert schedule["params"] == {"limit": 25}
    assert (schedule["timeout"], schedule["retries"], schedule["alert_on"]) == (1800.0, 2, "failure")
    assert schedule["alerts"] == ["https://hooks.example/${HOOK}"]  # kept as written, never resolved
    assert schedule["next_slot"].endswith(("T06:00:00+01:00", "T06:00:00+02:00"))
    assert schedule["next_slot_utc"].endswith(("T05:00:00+00:00", "T04:00:00+00:00"))
    assert schedule["last_run"] is None
    table = etl_nb("schedule", "list", cwd=project).stdout
    assert schedule["id"] in table
    assert "Europe/Paris" in table


def test_pause_resume_and_remove_take_a_unique_id_prefix(
    project: Path, nightly: Path, etl_nb: Callable[..., Run]
) -> None:
    etl_nb("schedule", "add", str(nightly), "--cron", "*/5 * * * *", cwd=project)
    schedule_id = json.loads(etl_nb("schedule", "list", "--json", cwd=project).stdout)[0]["id"]

    paused = etl_nb("schedule", "pause", schedule_id[:6], cwd=project)
    listed = json.loads(etl_nb("schedule", "list", "--json", cwd=project).stdout)[0]
    resumed = etl_nb("schedule", "resume", schedule_id, cwd=project)
    removed = etl_nb("schedule", "remove", schedule_id, cwd=project)

    assert paused.stdout.startswith(f"paused schedule {schedule_id}")
    assert listed["paused"] is True
    assert listed["next_slot"] is None
    assert resumed.stdout.startswith(f"resumed schedule {schedule_id}")
    assert removed.stdout.startswith(f"removed schedule {schedule_id}")
    assert json.loads(etl_nb("schedule", "list", "--json", cwd=project).stdout) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "61 * * * *"], "'61 * * * *' is not a cron expression. Write five fields"),
        (["--cron", "often"], "'often' is not a cron expression."),
        (
            ["--cron", "0 6 * * *", "--tz", "Europe/Pariss"],
            "Unknown time zone 'Europe/Pariss'. Did you mean 'Europe/Paris'?",
        ),
        (
            ["--cron", "0 6 * * *", "-p", "limt", "3"],
            "Unknown parameter 'limt' for notebook 'nightly.ipynb'. Did you mean 'limit'?",
        ),
        (["--cron", "0 6 * * *", "-p", "limit", "many"], "Parameter 'limit' takes a whole number"),
        (["--cron", "0 6 * * *", "--timeout", "-5"], "The duration '-5' is not a duration"),
        (["--cron", "0 6 * * *", "--retries", "lots"], "'lots' is not a whole number from 0 to 100"),
        (["--cron", "0 6 * * *", "--alert", "ftp://x"], "Alert target 'ftp://x' is neither a webhook URL"),
        (["--cron", "0 6 * * *", "--alert-on", "sometimes"], "argument --alert-on: invalid choice"),
    ],
)
def test_bad_schedule_input_gets_one_line_and_exit_code_2(
    project: Path, nightly: Path, args: list[str], message: str, etl_nb: Callable[..., Run]
) -> None:
    done = etl_nb("schedule", "add", str(nightly), *args, cwd=project)

    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert json.loads(etl_nb("schedule", "list", "--json", cwd=project).stdout) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["schedule", "pause", "nope"], "'nope' matches no schedule. See 'etl-nb schedule list'"),
        (["schedule", "remove", ""], "'' matches no schedule."),
        (
            ["schedule", "add", "missing.ipynb", "--cron", "0 6 * * *"],
            "Notebook 'missing.ipynb' does not exist.",
        ),
        (["schedule", "add", "x.ipynb"], "the following arguments are required: --cron"),
        (["schedule"], "the following arguments are required: ACTION"),
        (["scheduler", "--backend", "cloud"], "argument --backend: invalid choice: 'cloud'"),
        (["scheduler", "--interval", "soon"], "The duration 'soon' is not a duration"),
        (["worker", "--concurrency", "0"], "'0' is not a whole number above 0"),
        (["run", "x.ipynb", "--timeout", "-5"], "The duration '-5' is not a duration"),
        (["run", "x.ipynb", "--backend", "cloud"], "argument --backend: invalid choice"),
        (["runs", "--status", "weird"], "argument --status: invalid choice"),
        (["show", " "], "Give a run id (or a unique prefix of one)"),
        (
            ["backfill", "x.ipynb", "--param", "d", "--from", "1"],
            "the following arguments are required: --to",
        ),
        (
            ["backfill", "x.ipynb", "--param", "d", "--from", "1", "--to", "2", "--parallel", "0"],
            "'0' is not a whole number above 0",
        ),
    ],
)
def test_bad_input_to_the_scheduling_commands_gets_one_line_and_exit_code_2(
    project: Path, args: list[str], message: str, etl_nb: Callable[..., Run]
) -> None:
    done = etl_nb(*args, cwd=project)

    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
