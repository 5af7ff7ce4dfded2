"""Transient connector errors are retried with backoff; permanent ones fail at once."""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa
import pytest

from etl_nb import Pipeline, RetryPolicy
from etl_nb.connectors import Connector, PendingWrite, ReadRequest, WriteRequest, register
from etl_nb.errors import ConnectorError
from etl_nb.store import RunStore

FAST = RetryPolicy(attempts=3, initial=0.01, maximum=0.05)


class _Script:
    """What the test connector does on each call: raise the next error, or succeed."""

    errors: list[ConnectorError] = []
    write_errors: list[ConnectorError] = []
    calls = 0
    writes = 0


@register("flaky")
class _FlakyConnector(Connector):
    """A source that fails as scripted, then returns three rows; a sink that does the same."""

    def read(self, request: ReadRequest) -> pa.RecordBatchReader:
        _Script.calls += 1
        if _Script.errors:
            raise _Script.errors.pop(0)
        table = pa.table({"id": [1, 2, 3]})
        return pa.RecordBatchReader.from_batches(table.schema, table.to_batches())

    def write(self, request: WriteRequest) -> PendingWrite:
        _Script.writes += 1
        if _Script.write_errors:
            raise _Script.write_errors.pop(0)
        return _Nothing(rows=len(request.relation.fetchall()))


class _Nothing:
    def __init__(self, rows: int) -> None:
        self.rows = rows

    def commit(self) -> None:
        pass

    def abort(self) -> None:
        pass


@pytest.fixture(autouse=True)
def script() -> type[_Script]:
    _Script.errors, _Script.write_errors, _Script.calls, _Script.writes = [], [], 0, 0
    return _Script


def _pipeline(tmp_path: Path, retry: RetryPolicy = FAST) -> Pipeline:
    p = Pipeline("flaky", base_dir=tmp_path, retry=retry)
    p.connect("api", "flaky://example", type="flaky")
    p.extract("rows", source="api", path="/rows")
    return p


def _transient(message: str = "503 Service Unavailable") -> ConnectorError:
    return ConnectorError(message, transient=True)


def test_a_flaky_source_succeeds_on_the_third_attempt(
    tmp_path: Path, script: type[_Script], caplog: pytest.LogCaptureFixture
) -> None:
    script.errors = [_transient(), _transient()]
    with caplog.at_level(logging.WARNING, logger="etl_nb"):
        result = _pipeline(tmp_path).run()
    assert result.status == "success"
    assert script.calls == 3
    assert result.steps["rows"].rows == 3
    retries = [r.getMessage() for r in caplog.records if "retrying after a transient error" in r.getMessage()]
    assert len(retries) == 2
    assert "attempt=1" in retries[0]
    assert "503 Service Unavailable" in retries[0]
    record = RunStore().get_run(result.run_id)
    assert record is not None
    assert record.steps[0].detail is not None
    assert record.steps[0].detail["attempts"] == 3


def test_a_source_that_keeps_failing_gives_up_after_the_last_attempt(
    tmp_path: Path, script: type[_Script]
) -> None:
    script.errors = [_transient(f"503 #{i}") for i in range(1, 6)]
    result = _pipeline(tmp_path).run()
    assert result.status == "failed"
    assert script.calls == 3
    assert result.error == "503 #3"
    assert result.steps["rows"].status == "failed"


def test_a_permanent_error_is_not_retried(tmp_path: Path, script: type[_Script]) -> None:
    script.errors = [ConnectorError("401 Unauthorized: check the token"), _transient()]
    result = _pipeline(tmp_path).run()
    assert result.status == "failed"
    assert script.calls == 1
    assert result.error == "401 Unauthorized: check the token"


def test_attempts_one_means_no_retry(tmp_path: Path, script: type[_Script]) -> None:
    script.errors = [_transient()]
    result = _pipeline(tmp_path, RetryPolicy(attempts=1, initial=0.01, maximum=0.05)).run()
    assert result.status == "failed"
    assert script.calls == 1


def test_a_flaky_sink_is_retried_too(tmp_path: Path, script: type[_Script]) -> None:
    p = _pipeline(tmp_path)
    p.load("rows", to="api", table="rows")
    script.write_errors = [_transient()]
    result = p.run().raise_for_status()
    assert (script.calls, script.writes) == (1, 2)
    assert result.steps["load:rows:api:rows"].rows == 3
    record = RunStore().get_run(result.run_id)
    assert record is not None
    assert [(s.detail or {}).get("attempts") for s in record.steps] == [None, 2]


def test_the_retry_wait_grows_and_stays_under_the_maximum() -> None:
    waits = []
    policy = RetryPolicy(attempts=5, initial=0.01, maximum=0.05, jitter=0.0)

    class _State:
        def __init__(self, attempt: int) -> None:
            self.attempt_number = attempt

    for attempt in range(1, 6):
        waits.append(policy._wait(_State(attempt)))  # type: ignore[arg-type]
    assert waits == [0.01, 0.02, 0.04, 0.05, 0.05]
