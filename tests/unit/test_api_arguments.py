"""A bad value given to the Python API gets one line, never a traceback (issue 10, item 7).

Each value the hostile probe tried has its own case; a hypothesis test then
throws arbitrary values at every public method and proves that only
``EtlError`` subclasses escape.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl_nb import Pipeline
from etl_nb.errors import EtlError, SpecError


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    (tmp_path / "in.csv").write_text("id\n1\n")
    p = Pipeline("api", base_dir=tmp_path)
    p.connect("lake", ".")
    p.extract("rows", source="lake", path="in.csv")
    return p


BAD_CALLS: dict[str, Callable[[Pipeline], Any]] = {
    "connect('')": lambda p: p.connect(""),
    "connect(None)": lambda p: p.connect(None),  # type: ignore[arg-type]
    "connect('c', 123)": lambda p: p.connect("c", 123),  # type: ignore[arg-type]
    "memory_limit='lots'": lambda p: Pipeline("x", memory_limit="lots"),
    "database='/nonexistent/x.duckdb'": lambda p: Pipeline("x", database="/nonexistent/x.duckdb"),
    "https://[::1": lambda p: p.connect("api", "https://[::1"),
    "load(key=123)": lambda p: p.load("rows", to="lake", path="x.csv", mode="merge", key=123),  # type: ignore[arg-type]
    "extract(options='x')": lambda p: p.extract("more", "lake", path="in.csv", options="x"),  # type: ignore[arg-type]
    "run(params='x')": lambda p: p.run(params="x"),  # type: ignore[arg-type]
    "run(materialize='bogus')": lambda p: p.run(materialize="bogus"),  # type: ignore[arg-type]
    "table(['x'])": lambda p: p.table(["x"]),  # type: ignore[arg-type]
    "run(run_id='../x')": lambda p: p.run(run_id="../x"),
}


@pytest.mark.parametrize("call", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_a_bad_argument_is_one_line_naming_the_fix(
    pipeline: Pipeline, call: Callable[[Pipeline], Any]
) -> None:
    with pytest.raises(SpecError) as info:
        call(pipeline)
    assert "\n" not in info.value.message
    assert len(info.value.message) < 300


def test_unknown_options_on_a_folder_connection_are_one_line(pipeline: Pipeline) -> None:
    pipeline.connect("lake", ".", delimiter=";")
    result = pipeline.run()
    assert result.status == "failed"
    assert result.error == (
        "Connection 'lake': unknown option 'delimiter'. Folder connections take no options; "
        "reader options go in an extract's 'options:'."
    )


def test_a_huge_parameter_value_is_cut_in_stored_errors(pipeline: Pipeline, store_url: str) -> None:
    pipeline.transform("t", "SELECT error('no such customer: ' || {{ n }}) AS n")
    result = pipeline.run(params={"n": "9" * 100_000}, materialize="all")
    assert result.status == "failed"
    with sqlite3.connect(store_url.removeprefix("sqlite:///")) as con:
        errors = [
            e for (e,) in con.execute("SELECT error FROM etl_runs UNION ALL SELECT error FROM etl_step_runs")
        ]
    assert any(errors)
    assert all(len(e or "") < 5_000 for e in errors)


# --- any value at all ---------------------------------------------------------------------

ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.binary(max_size=5),
    st.lists(st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=3),
    st.dictionaries(
        st.one_of(st.text(max_size=5), st.integers()),
        st.one_of(st.integers(), st.text(max_size=5)),
        max_size=3,
    ),
    st.sampled_from(
        ["", ".", "../x", "~/x", "/etc/passwd", "x\x00y", "https://[::1", "lake", "rows", "a,b", "2GB"]
    ),
)

CALLS: dict[str, Callable[[Pipeline, Any, Any], Any]] = {
    "Pipeline": lambda p, a, b: Pipeline(a, base_dir=p.base_dir, memory_limit=b),
    "Pipeline.database": lambda p, a, b: Pipeline("x", database=a, temp_directory=b),
    "Pipeline.parameters": lambda p, a, b: Pipeline("x", parameters=a, retry=b),
    "Pipeline.base_dir": lambda p, a, b: Pipeline("x", base_dir=a, store=b),
    "connect": lambda p, a, b: p.connect(a, b),
    "connect.type": lambda p, a, b: p.connect("c", "./x", type=a, option=b),
    "extract": lambda p, a, b: p.extract(a, "lake", b),
    "extract.path": lambda p, a, b: p.extract("e", a, path=b),
    "extract.options": lambda p, a, b: p.extract("e", "lake", path="in.csv", format=a, options=b),
    "extract.params": lambda p, a, b: p.extract("e", "lake", path="in.csv", params=a, paginate=b),
    "extract.records": lambda p, a, b: p.extract("e", "lake", path="in.csv", records=a, incremental=b),
    "transform": lambda p, a, b: p.transform(a, b),
    "transform.python": lambda p, a, b: p.transform("t", python=a),
    "check": lambda p, a, b: p.check(a, b),
    "check.warn": lambda p, a, b: p.check("rows", [{"not_null": a}], warn=b),
    "load": lambda p, a, b: p.load(a, b, path="out.csv"),
    "load.path": lambda p, a, b: p.load("rows", "lake", table=a, path=b),
    "load.mode": lambda p, a, b: p.load("rows", "lake", path="out.csv", mode=a, key=b),
    "run": lambda p, a, b: p.run(a, only=b),
    "run.from_step": lambda p, a, b: p.run(from_step=a, steps=b),
    "run.materialize": lambda p, a, b: p.run(materialize=a, listener=b),
    "run.notebook": lambda p, a, b: p.run(notebook=a, trigger=b),
    "run.run_id": lambda p, a, b: p.run(run_id=a),
    "run_step": lambda p, a, b: p.run_step(a, b),
    "table": lambda p, a, b: p.table(a),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=ANYTHING, second=ANYTHING)
def test_only_etl_errors_escape_the_python_api(
    pipeline: Pipeline, call: Callable[[Pipeline, Any, Any], Any], first: Any, second: Any
) -> None:
    error: EtlError | None = None
    try:
        call(pipeline, first, second)
    except EtlError as exc:  # anything else fails the test with its traceback
        error = exc
    if error is not None:
        assert error.message
        assert "Traceback" not in error.message
