"""A resolved secret is masked in every form it takes, through a real run (issue 10, item 4).

The connector below fails the way httpx does on a token with a trailing
newline (``Illegal header value b'Bearer ...\\n'``), raised from a driver
error that quotes the token itself: the run's error, the retry log lines, the
run store and the exception chain a traceback would print all stay masked.
"""

from __future__ import annotations

import logging
import sqlite3
import traceback
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from etl_nb import Pipeline, RetryPolicy
from etl_nb.connectors import Connector, PendingWrite, ReadRequest, WriteRequest, register
from etl_nb.errors import ConnectorError


class _DriverError(Exception):
    pass


@register("escaping")
class _EscapingConnector(Connector):
    """Sends the token as a header; the 'driver' refuses it and quotes it escaped."""

    def open(self) -> None:
        self.token = self.resolved(self.spec.url.removeprefix("escaping://"))

    def read(self, request: ReadRequest) -> pa.RecordBatchReader:
        header = f"Bearer {self.token}".encode()
        try:
            raise _DriverError(f"Illegal header value {header!r}", {"Authorization": header})
        except _DriverError as exc:
            raise ConnectorError(f"Request failed: {exc}", transient=True) from exc

    def write(self, request: WriteRequest) -> PendingWrite:
        raise NotImplementedError


@pytest.mark.parametrize("ending", ["\n", "\r", "\r\n"])
def test_a_token_with_a_trailing_line_break_is_masked_everywhere(
    tmp_path: Path,
    store_url: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    ending: str,
) -> None:
    core = f"tok-{uuid.uuid4().hex}"
    monkeypatch.setenv("ESCAPED_TOKEN", core + ending)
    p = Pipeline("escaped", base_dir=tmp_path, retry=RetryPolicy(attempts=2, initial=0.01, maximum=0.02))
    p.connect("api", "escaping://${ESCAPED_TOKEN}", type="escaping")
    p.extract("rows", source="api", path="/rows")
    with caplog.at_level(logging.DEBUG, logger="etl_nb"):
        result = p.run()

    assert result.status == "failed"
    assert result.error is not None
    assert "Illegal header value b'Bearer ***'" in result.error
    assert any("retrying" in r.getMessage() for r in caplog.records)
    assert core not in caplog.text
    assert core not in result.error
    assert result.exception is not None
    assert core not in "".join(traceback.format_exception(result.exception))
    with sqlite3.connect(store_url.removeprefix("sqlite:///")) as con:
        stored = repr(con.execute("SELECT * FROM etl_runs").fetchall())
        stored += repr(con.execute("SELECT * FROM etl_step_runs").fetchall())
    assert core not in stored
