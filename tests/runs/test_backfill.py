"""``etl-nb backfill``: one recorded run per value, and a second identical call resumes where it stopped."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Run = subprocess.CompletedProcess[str]

# Fails for day 2 while the file 'day2-broken' exists.
DAILY = """
import os
open(f"ran-{day}", "a").write("x")
if day == "2026-01-02" and os.path.exists("day2-broken"):
    raise RuntimeError("source not ready")
open(f"slot-{day}", "w").write(scheduled_for)
"""


def _runs(etl_nb: Callable[..., Run], project: Path) -> list[dict[str, object]]:
    return json.loads(etl_nb("runs", "--json", "--limit", "100", cwd=project).stdout)


def test_a_date_backfill_records_one_run_per_day_and_resumes_only_what_failed(
    project: Path, notebook: Callable[..., Path], etl_nb: Callable[..., Run]
) -> None:
    nb = notebook(project / "daily.ipynb", DAILY, 'day = "2026-01-01"\nscheduled_for = ""')
    (project / "day2-broken").write_text("")
    args = (
        "backfill",
        str(nb),
        "--param",
        "day",
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-03",
        "--step",
        "1d",
    )

    first = etl_nb(*args, cwd=project)
    (project / "day2-broken").unlink()
    second = etl_nb(*args, cwd=project)

    assert first.returncode == 1
    assert "day=2026-01-02: failed" in first.stdout
    assert "2 of 3 values succeeded" in first.stdout
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.splitlines()[0].startswith("day=2026-01-02: success")
    assert "resumed: 3 of 3 values succeeded" in second.stdout
    assert [(project / f"ran-2026-01-0{d}").read_text() for d in (1, 2, 3)] == ["x", "xx", "x"]
    assert (project / "slot-2026-01-03").read_text() == "2026-01-03T00:00:00+00:00"
    runs = _runs(etl_nb, project)
    assert len(runs) == 4
    assert {r["trigger"] for r in runs} == {"backfill"}


def test_a_number_backfill_runs_in_parallel_with_a_step(
    project: Path, notebook: Callable[..., Path], etl_nb: Callable[..., Run]
) -> None:
    nb = notebook(project / "parts.ipynb", "open(f'part-{part}', 'w').write(str(part * 2))", "part = 0")

    done = etl_nb(
        "backfill",
        str(nb),
        "--param",
        "part",
        "--from",
        "1",
        "--to",
        "5",
        "--step",
        "2",
        "--parallel",
        "2",
        cwd=project,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in project.glob("part-*")) == ["part-1", "part-3", "part-5"]
    assert (project / "part-5").read_text() == "10"  # passed as a number, as the default is one
    assert sorted(r["params"]["part"] for r in _runs(etl_nb, project)) == [1, 3, 5]  # type: ignore[index]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--param", "day", "--from", "2026-01-05", "--to", "2026-01-01"], "comes after --to 2026-01-01"),
        (["--param", "day", "--from", "2026-01-01", "--to", "7"], "must both be dates (2026-01-01) or both"),
        (
            ["--param", "day", "--from", "2026-01-01", "--to", "2026-01-03", "--step", "6h"],
            "must be whole days",
        ),
        (
            ["--param", "day", "--from", "2026-01-01", "--to", "2026-01-03", "--step", "often"],
            "is not a duration",
        ),
        (["--param", "dya", "--from", "2026-01-01", "--to", "2026-01-03"], "Did you mean 'day'?"),
        (
            ["--param", "n", "--from", "2026-01-01", "--to", "2026-01-03"],
            "Parameter 'n' takes a whole number",
        ),
    ],
)
def test_a_bad_backfill_is_refused_in_one_line_and_records_nothing(
    project: Path, notebook: Callable[..., Path], etl_nb: Callable[..., Run], args: list[str], message: str
) -> None:
    nb = notebook(project / "daily.ipynb", "x = 1", 'day = "2026-01-01"\nn = 1')

    done = etl_nb("backfill", str(nb), *args, cwd=project)

    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert _runs(etl_nb, project) == []
