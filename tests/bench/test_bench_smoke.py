"""The benchmark harness runs end to end at its small size and writes its page and charts.

No timing is asserted: the machine is shared and the small size is too small
to compare. What a reader of docs/benchmarks.md relies on is checked: a table
per workload with a row per competitor, the goals judged, a chart per workload.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench import run as harness  # noqa: E402

pytestmark = pytest.mark.postgres

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``bench/run.py --size small`` into a temporary folder, as ``make bench`` runs it."""
    missing = [m for m in ("sql", "pandas", "dlt", "psutil", "matplotlib") if not importlib.util.find_spec(m)]
    if missing:
        why = f"{', '.join(missing)} not installed: the smoke test needs the bench extra (make setup)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--size", "small", "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_small_run_writes_a_section_and_a_chart_per_workload(small_run: Path) -> None:
    page = (small_run / "benchmarks.md").read_text()
    for workload in harness.WORKLOADS.values():
        assert f"## {workload.TITLE}" in page
        chart = small_run / "bench" / f"{workload.NAME}.png"
        assert chart.read_bytes().startswith(PNG_MAGIC)
        assert f"](bench/{workload.NAME}.png)" in page


def test_small_run_has_a_row_for_every_competitor_in_every_case(small_run: Path) -> None:
    page = (small_run / "benchmarks.md").read_text()
    table_rows = [line for line in page.splitlines() if line.startswith("| ") and " | " in line]
    for workload in harness.WORKLOADS.values():
        for key, label in workload.COMPETITORS.items():
            cases = ["new table"] if workload.NAME == "postgres" and key == "floor" else workload.CASES
            for case in cases:
                assert any(row.startswith(f"| {case} | ") and label in row for row in table_rows), (
                    case,
                    label,
                )


def test_small_run_says_the_size_and_judges_every_goal(small_run: Path) -> None:
    page = (small_run / "benchmarks.md").read_text()
    assert "size: **small**" in page
    assert "Smoke-test size" in page
    goals = [goal for workload in harness.WORKLOADS.values() for goal in workload.GOALS]
    for goal in goals:
        assert f"| {goal.text} |" in page
    verdicts = page.split("## Goals", 1)[1].split("\n## ", 1)[0]
    assert "not measured" not in verdicts


def test_small_run_keeps_every_sample_and_the_versions(small_run: Path) -> None:
    results = json.loads((small_run / "bench" / "results.json").read_text())
    assert results["meta"]["size"] == "small"
    assert results["meta"]["versions"]["duckdb"] != "not installed"
    for name, workload in results["workloads"].items():
        assert not workload.get("error"), (name, workload.get("error"))
        assert {s["competitor"] for s in workload["samples"]} == set(harness.WORKLOADS[name].COMPETITORS)
