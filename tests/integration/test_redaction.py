"""A resolved ``${VAR}`` never leaves the process: not in errors, logs, the run store or reprs."""

from __future__ import annotations

import logging
import sqlite3
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from etl_nb import Pipeline, RetryPolicy
from etl_nb._logging import get_logger
from etl_nb._secrets import resolve
from etl_nb.connectors import Connector, PendingWrite, ReadRequest, WriteRequest, register
from etl_nb.errors import ConnectorError


@register("leaky")
class _LeakyConnector(Connector):
    """A connector that behaves like a careless driver: it puts its full URL in every error."""

    def open(self) -> None:
        self.resolved = resolve(self.spec.url, self.context.env_file)
        logging.getLogger("etl_nb").warning("driver connected to %s", self.resolved)

    def read(self, request: ReadRequest) -> pa.RecordBatchReader:
        raise ConnectorError(f"driver said: timeout talking to {self.resolved}", transient=True)

    def write(self, request: WriteRequest) -> PendingWrite:
        raise ConnectorError(f"driver said: cannot write with {self.resolved}")


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    value = f"tok-{uuid.uuid4().hex}"
    monkeypatch.setenv("LEAKY_TOKEN", value)
    return value


def _store_text(store_url: str) -> str:
    with sqlite3.connect(store_url.removeprefix("sqlite:///")) as con:
        rows = [
            *con.execute("SELECT * FROM etl_runs").fetchall(),
            *con.execute("SELECT * FROM etl_step_runs").fetchall(),
        ]
    return repr(rows)


def test_a_resolved_secret_is_in_no_error_log_store_row_or_repr(
    tmp_path: Path, token: str, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    p = Pipeline("secrets", base_dir=tmp_path, retry=RetryPolicy(attempts=2, initial=0.01, maximum=0.02))
    p.connect("api", "leaky://svc:${LEAKY_TOKEN}@api.example.com/v1?key=${LEAKY_TOKEN}", type="leaky")
    p.extract("rows", source="api", path="/rows")
    with caplog.at_level(logging.DEBUG, logger="etl_nb"):
        result = p.run()

    assert result.status == "failed"
    assert result.error is not None
    assert "driver said: timeout talking to leaky://svc:***@api.example.com/v1?key=***" in result.error
    assert token not in result.error
    assert token not in str(result)
    assert result.exception is not None
    assert token not in str(result.exception)
    assert token not in repr(p)
    assert "${LEAKY_TOKEN}" in p.spec.connections["api"].url  # the spec keeps the reference
    assert any("retrying after a transient error" in r.getMessage() for r in caplog.records)
    assert token not in caplog.text
    assert token not in _store_text(store_url)


def test_a_secret_from_a_dotenv_file_is_masked_too(tmp_path: Path, store_url: str) -> None:
    value = f"dotenv-{uuid.uuid4().hex}"
    (tmp_path / ".env").write_text(f"DOTENV_TOKEN={value}\n")
    p = Pipeline("secrets", base_dir=tmp_path, retry=RetryPolicy(attempts=1))
    p.connect("api", "leaky://api.example.com/?token=${DOTENV_TOKEN}", type="leaky")
    p.extract("rows", source="api", path="/rows")
    p.load("rows", to="api", table="copy")
    result = p.run()
    assert result.error is not None
    assert "token=***" in result.error
    assert value not in result.error
    assert value not in _store_text(store_url)


def test_an_unset_secret_is_named_not_guessed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEVER_SET_TOKEN", raising=False)
    p = Pipeline("secrets", base_dir=tmp_path)
    p.connect("lake", "${NEVER_SET_TOKEN}/data")
    p.extract("rows", source="lake", path="rows.csv")
    result = p.run()
    assert result.error is not None
    assert "Connection 'lake' uses ${NEVER_SET_TOKEN} but it is not set" in result.error
    assert "add it to the .env file beside the notebook" in result.error


def test_a_literal_url_password_is_masked_in_errors_and_the_store(tmp_path: Path, store_url: str) -> None:
    p = Pipeline("secrets", base_dir=tmp_path)
    p.connect("api", "leaky://svc:literal-pass-42@api.example.com/v1", type="leaky")
    p.extract("rows", source="api", path="/rows")
    p.retry = RetryPolicy(attempts=1)
    result = p.run()
    assert result.error is not None
    assert "leaky://svc:***@api.example.com/v1" in result.error
    assert "literal-pass-42" not in result.error
    assert "literal-pass-42" not in _store_text(store_url)
    assert "literal-pass-42" not in repr(p)


def test_structured_log_lines_mask_secrets_nested_in_values(
    token: str, caplog: pytest.LogCaptureFixture
) -> None:
    resolved = resolve("https://u:${LEAKY_TOKEN}@example.com")
    log = get_logger(pipeline="secrets")
    with caplog.at_level(logging.INFO, logger="etl_nb"):
        log.info("request", headers={"Authorization": f"Bearer {token}"}, error=ValueError(resolved))
        logging.getLogger("etl_nb").info("plain %s line", token)
    assert "request" in caplog.text
    assert "plain *** line" in caplog.text
    assert token not in caplog.text


def test_a_url_from_a_secret_reference_opens_as_the_kind_it_resolves_to(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret_dir = tmp_path / f"hidden-{uuid.uuid4().hex}"
    (secret_dir / "lake").mkdir(parents=True)
    (secret_dir / "lake" / "rates.csv").write_text("currency,rate\nEUR,1.0\nUSD,0.5\n")
    with sqlite3.connect(secret_dir / "shop.db") as db:
        db.execute("CREATE TABLE orders (id INTEGER, currency TEXT)")
        db.executemany("INSERT INTO orders VALUES (?, ?)", [(1, "EUR"), (2, "USD")])
    monkeypatch.setenv("SHOP_URL", f"sqlite:///{secret_dir / 'shop.db'}")
    monkeypatch.setenv("LAKE_DIR", str(secret_dir / "lake"))
    p = Pipeline("auto_kind", base_dir=tmp_path)
    p.connect("shop", "${SHOP_URL}")
    p.connect("lake", "${LAKE_DIR}")
    assert [c.type for c in p.spec.connections.values()] == ["auto", "auto"]
    p.extract("orders", source="shop", query="SELECT * FROM orders")
    p.extract("rates", source="lake", path="rates.csv")
    p.transform("priced", sql="SELECT id, rate FROM orders JOIN rates USING (currency) ORDER BY id")
    p.load("priced", to="lake", path="out/priced.csv", mode="replace")
    p.load("orders", to="lake", path="out/orders.parquet", mode="replace")
    with caplog.at_level(logging.DEBUG, logger="etl_nb"):
        p.run().raise_for_status()
    assert p.table("priced").rows() == [(1, 1.0), (2, 0.5)]
    assert (secret_dir / "lake" / "out" / "priced.csv").is_file()
    # A mistake on either connection: the error, logs, store and reprs never show where they point.
    p.extract("missing", source="lake", path="nope.csv")
    p.extract("broken", source="shop", query="SELECT * FROM no_such_table")
    failed = p.run()
    assert failed.status == "failed"
    for text in (str(failed), repr(failed), repr(p), repr(p.spec), caplog.text, _store_text(store_url)):
        assert secret_dir.name not in text
    assert p.spec.connections["shop"].url == "${SHOP_URL}"


def test_an_explicit_type_wins_over_the_resolved_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKE_DIR", str(tmp_path))
    p = Pipeline("typed", base_dir=tmp_path)
    p.connect("lake", "${LAKE_DIR}", type="sql")  # a folder is no SQLAlchemy URL: the sql kind says so
    p.extract("orders", source="lake", query="SELECT 1")
    result = p.run()
    assert result.status == "failed"
    assert result.error is not None
    assert "path:" not in result.error


def test_an_unset_reference_in_an_auto_url_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_URL", raising=False)
    p = Pipeline("unset", base_dir=tmp_path)
    p.connect("shop", "${NOT_SET_URL}")
    p.extract("orders", source="shop", query="SELECT 1")
    result = p.run()
    assert result.error is not None
    assert "uses ${NOT_SET_URL} but it is not set" in result.error
