# ruff: noqa: RUF001  (the page is typeset: it prints the multiplication sign and the en dash)
"""The results page says what was measured, which goal is missed by how much, and who was left out."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench import files, postgres, report  # noqa: E402
from bench import run as harness  # noqa: E402


def sample(competitor: str, seconds: dict[str, float], peak: float = 100.0) -> dict[str, Any]:
    return {"competitor": competitor, "round": 0, "seconds": seconds, "peak_mib": peak, "extra": {}}


def page(workload: Any, result: dict[str, Any]) -> str:
    meta = {
        "size": "full",
        "rounds": 1,
        "warmup": False,
        "machine": {
            "when": "now",
            "commit": "abc",
            "cpu": "cpu",
            "cores": 2,
            "memory_gib": 1,
            "system": "Linux",
            "python": "3.11",
        },
        "versions": {"duckdb": "2.0"},
        "load_before": "0",
        "load_after": "0",
    }
    results = {"meta": meta, "workloads": {workload.NAME: {"description": "d", **result}}}
    return report.render(results, harness.WORKLOADS, {})


def test_a_missed_goal_is_named_with_its_measured_ratio() -> None:
    case = files.CASE
    samples = [
        sample("etl_nb", {case: 3.0}, peak=300),
        sample("duckdb", {case: 2.0}, peak=100),
        sample("polars", {case: 1.0}),
        sample("pandas", {case: 4.0}),
    ]
    text = page(files, {"samples": samples, "left_out": {}})
    assert (
        "| files | etl_nb at most 1.15× the faster of DuckDB and Polars | 3.00× | **missed** (goal 1.15×) |"
        in text
    )
    assert "etl_nb's peak memory at most 1.2× DuckDB's: **missed**: 3.00× against 1.2×." in text
    assert (
        "| CSV → join → aggregate → Parquet | **DuckDB, one query** | 2.00 s | 2.00 s–2.00 s | 1.00× |"
        in text
    )


def test_a_peer_that_is_not_installed_is_left_out_and_the_page_says_so() -> None:
    samples = [sample(name, {postgres.NEW: 1.0}) for name in ("floor", "etl_nb")]
    left_out = {"dlt": "`dlt` is not installed here (`pip install -e '.[bench]'`)"}
    text = page(postgres, {"samples": samples, "left_out": left_out})
    assert "- dlt `sql_database` → `postgres`, merge: left out, `dlt` is not installed here" in text
    assert "a merge of changed rows at most 1.2× hand-written COPY + MERGE: not measured in this run." in text


def test_a_workload_that_could_not_run_says_why() -> None:
    text = page(postgres, {"error": "OperationalError: connection refused"})
    assert "**Could not run here**: OperationalError: connection refused" in text


def test_missing_peers_names_the_module_to_install() -> None:
    class Fake:
        IMPORTS = {"here": ("json",), "absent": ("no_such_module_for_bench",)}

    assert harness.missing_peers(Fake) == {  # type: ignore[arg-type]
        "absent": "`no_such_module_for_bench` is not installed here (`pip install -e '.[bench]'`)"
    }
