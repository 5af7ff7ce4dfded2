"""Credentials stay with their host across redirects, and httpx's own log lines show no secret."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from etl_nb import Pipeline, RetryPolicy
from etl_nb.connectors.http.paginate import PAGINATORS, NextPage, Page, Paginator
from etl_nb.errors import ConnectorError

Api = Any  # the `api` fixture's type, defined in conftest.py

# One credential of each kind a connection can send, and one header that is none.
AUTHS = {
    "bearer": {"type": "bearer", "token": "${REDIRECT_SECRET}"},
    "basic": {"type": "basic", "username": "alice", "password": "${REDIRECT_SECRET}"},
    "header": {"type": "header", "name": "X-Private", "value": "${REDIRECT_SECRET}"},
}
HEADERS = {"X-Session-Token": "literal-session-4417", "X-Tenant": "${REDIRECT_TENANT}", "X-Client": "etl-nb"}
CREDENTIALS = ("authorization", "x-private", "x-session-token", "x-tenant")


@pytest.fixture
def pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    """A pipeline that does not retry, with the secrets the connections refer to set."""
    monkeypatch.setenv("REDIRECT_SECRET", f"redirect-secret-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("REDIRECT_TENANT", "tenant-77")
    p = Pipeline("http_redirects", base_dir=tmp_path, retry=RetryPolicy(attempts=1))
    yield p
    p.close()


def _headers_seen(server: Api, k: str) -> dict[str, str]:
    (headers,) = server.state.headers[("/whoami", k)]
    return headers


@pytest.mark.parametrize("auth", sorted(AUTHS))
@pytest.mark.parametrize("elsewhere", ["another port", "another host"])
def test_a_redirect_to_another_host_or_port_drops_every_credential_header(
    pipeline: Pipeline, api: Api, other_api: Api, auth: str, elsewhere: str
) -> None:
    k = uuid.uuid4().hex[:10]
    # Two servers on 127.0.0.1 differ by port; 'localhost' is the same server under another host name.
    target = other_api if elsewhere == "another port" else api
    base = other_api.url if elsewhere == "another port" else api.url.replace("127.0.0.1", "localhost")
    pipeline.connect("api", api.url, auth=AUTHS[auth], headers=HEADERS)
    pipeline.extract("users", source="api", path="/redirect", params={"to": f"{base}/whoami?key={k}"})
    pipeline.run().raise_for_status()
    assert pipeline.table("users")["id"].to_list() == [1]
    seen = _headers_seen(target, k)
    assert [name for name in CREDENTIALS if name in seen] == []
    assert seen["x-client"] == "etl-nb"  # a header that is no credential still goes along


def test_a_redirect_on_the_same_host_and_port_keeps_the_credentials(pipeline: Pipeline, api: Api) -> None:
    k = uuid.uuid4().hex[:10]
    pipeline.connect("api", api.url, auth=AUTHS["header"], headers=HEADERS)
    pipeline.extract("users", source="api", path="/redirect", params={"to": f"/whoami?key={k}"})
    pipeline.run().raise_for_status()
    seen = _headers_seen(api, k)
    assert seen["x-private"].startswith("redirect-secret-")
    assert seen["x-session-token"] == "literal-session-4417"
    assert seen["x-tenant"] == "tenant-77"


def test_endless_redirects_fail_the_step_in_one_sentence(pipeline: Pipeline, api: Api) -> None:
    pipeline.connect("api", api.url)
    pipeline.extract("users", source="api", path="/loop")
    result = pipeline.run()
    assert isinstance(result.exception, ConnectorError)
    assert "redirects more than 20 times on page 1" in str(result.error)
    assert "Check 'path:'" in str(result.error)


def test_httpx_log_lines_mask_a_secret_in_the_query(
    pipeline: Pipeline, api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("QUERY_KEY", "query-key-in-the-url-8080")
    pipeline.connect("api", api.url, params={"api_key": "${QUERY_KEY}", "token": "literal-token-5150"})
    pipeline.extract("users", source="api", path="/users", records="data")
    with caplog.at_level(logging.DEBUG):  # the root logger, as an application's basicConfig would
        pipeline.run().raise_for_status()
    requests = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert requests
    assert all("api_key=***" in line and "token=***" in line for line in requests)
    assert "query-key-in-the-url-8080" not in caplog.text
    assert "literal-token-5150" not in caplog.text


class _SkipPaginator(Paginator):
    """A style written the way docs/connectors-http.md tells: every other page of page numbers."""

    type = "skip"
    options: ClassVar[dict[str, Any]] = {"param": "page"}
    example = "{type: skip}"

    def first_params(self) -> dict[str, Any]:
        return {self.options["param"]: 1, "per_page": 5}

    def next_params(self, page: Page) -> NextPage | None:
        return NextPage({"page": page.number * 2 + 1, "per_page": 5})


def test_a_pagination_style_added_to_the_registry_is_used_and_checked(
    pipeline: Pipeline, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(PAGINATORS, "skip", _SkipPaginator)
    pipeline.connect("api", api.url)
    pipeline.extract("users", source="api", path="/users", records="data", paginate={"type": "skip"})
    pipeline.run().raise_for_status()
    assert pipeline.table("users")["id"].to_list() == [1, 2, 3, 4, 5, 11, 12, 13, 14, 15, 21, 22, 23, 24, 25]
    pipeline.extract("users", source="api", path="/users", paginate={"type": "skip", "size": 3})
    error = str(pipeline.run().error)
    assert "'paginate:' of type skip has an unknown key 'size'; it takes type, param, max_pages." in error
