"""The REST API connector end to end: Pipeline -> HttpConnector -> a real HTTP server."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from etl_nb import Pipeline, RetryPolicy
from etl_nb.errors import ConnectorError, SpecError
from etl_nb.spec import ConnectionSpec, ExtractStep, parse_cell

Api = Any  # the `api` fixture's type, defined in conftest.py


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    """A pipeline whose engine does not retry, so each test sees the connector's own behaviour."""
    p = Pipeline("http_test", base_dir=tmp_path, retry=RetryPolicy(attempts=1))
    yield p
    p.close()


def key() -> str:
    return uuid.uuid4().hex[:10]


def run_extract(p: Pipeline, api: Api, connect: dict[str, Any] | None = None, **extract: Any) -> pl.DataFrame:
    p.connect("api", api.url, **(connect or {}))
    p.extract("users", source="api", **extract)
    p.run().raise_for_status()
    return p.table("users")


def failure(p: Pipeline, api: Api, connect: dict[str, Any] | None = None, **extract: Any) -> BaseException:
    p.connect("api", api.url, **(connect or {}))
    p.extract("users", source="api", **extract)
    result = p.run()
    assert result.status == "failed"
    assert result.exception is not None
    assert "internal error" not in str(result.error)
    assert "\n" not in str(result.exception), "errors are one line"
    return result.exception


# --- pagination styles --------------------------------------------------------------------


def test_page_pagination_reads_every_page_into_struct_and_list_columns(pipeline: Pipeline, api: Api) -> None:
    users = run_extract(
        pipeline,
        api,
        path="/users",
        records="data",
        paginate={"type": "page", "param": "page", "size_param": "per_page", "size": 10, "start": 1},
    )
    assert users.height == 25
    assert users["id"].to_list() == list(range(1, 26))
    assert isinstance(users.schema["address"], pl.Struct)
    assert isinstance(users.schema["tags"], pl.List)
    seventh = users.filter(pl.col("id") == 7).row(0, named=True)
    assert seventh["address"] == {"city": "Lyon", "geo": {"lat": 0.7, "lng": -0.7}}
    assert seventh["tags"] == ["t0"]
    assert seventh["email"] == "user7@example.com"


def test_offset_pagination_with_a_bare_list_body(pipeline: Pipeline, api: Api) -> None:
    users = run_extract(pipeline, api, path="/users_offset", paginate={"type": "offset", "size": 7})
    assert users.height == 25
    assert users["id"].to_list() == list(range(1, 26))


def test_cursor_pagination_follows_next_cursor_until_it_is_null(pipeline: Pipeline, api: Api) -> None:
    users = run_extract(
        pipeline,
        api,
        path="/users_cursor",
        records="items",
        paginate={"type": "cursor", "param": "cursor", "next": "meta.next_cursor"},
    )
    assert users["id"].to_list() == list(range(1, 26))


def test_link_pagination_follows_rel_next(pipeline: Pipeline, api: Api) -> None:
    users = run_extract(pipeline, api, path="/users_link", params={"per_page": 10}, paginate={"type": "link"})
    assert users["id"].to_list() == list(range(1, 26))


def test_no_pagination_makes_one_request(pipeline: Pipeline, api: Api) -> None:
    users = run_extract(pipeline, api, path="/users_all", paginate={"type": "none"})
    assert users.height == 25


def test_max_pages_stops_an_endless_api(pipeline: Pipeline, api: Api) -> None:
    k = key()
    users = run_extract(
        pipeline,
        api,
        path="/endless",
        params={"key": k},
        records="data",
        paginate={"type": "page", "size": 5, "max_pages": 3},
    )
    assert users.height == 15
    assert len(api.state.times("/endless", k)) == 3


def test_records_dot_path_reaches_nested_lists(pipeline: Pipeline, api: Api) -> None:
    users = run_extract(pipeline, api, path="/wrapped", records="result.rows")
    assert users["name"].to_list() == [u["name"] for u in api.users[:4]]


def test_cell_bodies_parse_and_run(pipeline: Pipeline, api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", api.bearer_token)
    connect = parse_cell(
        "connect api",
        f"url: {api.url}\nauth: {{type: bearer, token: '${{API_TOKEN}}'}}\ntimeout: 5\nmax_retries: 2\n"
        "headers:\n  X-Client: etl_nb-tests\n",
    )
    assert isinstance(connect, ConnectionSpec)
    assert connect.type == "http"
    extract = parse_cell(
        "extract users --from api",
        "path: /secure/bearer\nrecords: data\npaginate: {type: none}\n",
    )
    assert isinstance(extract, ExtractStep)
    pipeline.add(connect).add(extract)
    pipeline.run().raise_for_status()
    assert pipeline.table("users")["id"].to_list() == [1, 2, 3]


def test_line_form_connect_infers_http(pipeline: Pipeline, api: Api) -> None:
    connect = parse_cell(f"connect api {api.url}")
    assert isinstance(connect, ConnectionSpec)
    extract = parse_cell(
        "extract users --from api",
        "path: /users\nrecords: data\npaginate:\n  type: page\n  size: 20\n",
    )
    pipeline.add(connect).add(extract)  # type: ignore[arg-type]
    pipeline.run().raise_for_status()
    assert pipeline.table("users").height == 25


# --- auth and secrets -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "auth", "env"),
    [
        ("/secure/bearer", {"type": "bearer", "token": "${API_TOKEN}"}, {"API_TOKEN": "bearer_token"}),
        (
            "/secure/basic",
            {"type": "basic", "username": "alice", "password": "${API_PASSWORD}"},
            {"API_PASSWORD": "basic_password"},
        ),
        (
            "/secure/header",
            {"type": "header", "name": "X-API-Key", "value": "${API_KEY}"},
            {"API_KEY": "api_key"},
        ),
    ],
)
def test_auth_styles_reach_protected_paths(
    pipeline: Pipeline,
    api: Api,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    auth: dict[str, str],
    env: dict[str, str],
) -> None:
    for name, attribute in env.items():
        monkeypatch.setenv(name, getattr(api, attribute))
    users = run_extract(pipeline, api, connect={"auth": auth}, path=path, records="data")
    assert users.height == 3


def test_secret_reference_resolves_from_the_env_file(pipeline: Pipeline, api: Api) -> None:
    (pipeline.base_dir / ".env").write_text(f"API_KEY={api.api_key}\n")
    auth = {"type": "header", "name": "X-API-Key", "value": "${API_KEY}"}
    users = run_extract(pipeline, api, connect={"auth": auth}, path="/secure/header", records="data")
    assert users.height == 3


def test_wrong_token_says_check_the_auth_and_never_shows_it(
    pipeline: Pipeline, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_TOKEN", "wrong-token-7781")
    error = failure(
        pipeline, api, connect={"auth": {"type": "bearer", "token": "${API_TOKEN}"}}, path="/secure/bearer"
    )
    assert isinstance(error, ConnectorError)
    assert "401" in str(error)
    assert "auth" in str(error)
    assert "wrong-token-7781" not in str(error)


@pytest.mark.parametrize("tail", ["\n", "\r\n", "\r"])
def test_a_token_with_a_trailing_line_break_is_refused_by_header_name_never_shown(
    pipeline: Pipeline, api: Api, monkeypatch: pytest.MonkeyPatch, tail: str
) -> None:
    monkeypatch.setenv("API_TOKEN", f"pasted-token-3318{tail}")
    error = failure(
        pipeline, api, connect={"auth": {"type": "bearer", "token": "${API_TOKEN}"}}, path="/secure/bearer"
    )
    assert isinstance(error, SpecError)
    assert "header 'Authorization' holds a control character" in str(error)
    assert "pasted-token-3318" not in str(error)
    runs = pipeline.store.list_runs()
    assert runs
    assert all("pasted-token-3318" not in repr(r.to_dict()) for r in runs)


def test_a_secret_echoed_by_the_api_is_masked_in_the_error(
    pipeline: Pipeline, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_TOKEN", "echoed-secret-5521")
    error = failure(
        pipeline, api, connect={"auth": {"type": "bearer", "token": "${API_TOKEN}"}}, path="/echo_bad"
    )
    assert "400" in str(error)
    assert "token was Bearer ***" in str(error)
    assert "echoed-secret-5521" not in str(error)
    runs = pipeline.store.list_runs()
    assert runs
    assert all("echoed-secret-5521" not in repr(r.to_dict()) for r in runs)


def test_literal_header_secrets_are_masked_too(pipeline: Pipeline, api: Api) -> None:
    error = failure(
        pipeline,
        api,
        connect={"headers": {"Authorization": "Bearer literal-secret-9917"}},
        path="/echo_bad",
    )
    assert "literal-secret-9917" not in str(error)


@pytest.mark.parametrize("param", ["api_key", "access_token", "client_secret", "password"])
def test_literal_connection_params_with_secret_names_are_masked(
    pipeline: Pipeline, api: Api, store_url: str, param: str
) -> None:
    literal = f"lit{key()}"
    error = failure(pipeline, api, connect={"params": {param: literal, "v": "2"}}, path="/no/such/thing")
    assert "404" in str(error)
    assert literal not in str(error)
    with sqlite3.connect(store_url.removeprefix("sqlite:///")) as con:
        stored = repr(con.execute("SELECT * FROM etl_runs").fetchall())
        stored += repr(con.execute("SELECT * FROM etl_step_runs").fetchall())
    assert "404" in stored
    assert literal not in stored


def test_unset_secret_variable_is_named(
    pipeline: Pipeline, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOT_SET_TOKEN", raising=False)
    error = failure(
        pipeline, api, connect={"auth": {"type": "bearer", "token": "${NOT_SET_TOKEN}"}}, path="/users"
    )
    assert "${NOT_SET_TOKEN}" in str(error)
    assert ".env" in str(error)


# --- retries --------------------------------------------------------------------------------


def test_429_waits_out_retry_after_seconds(pipeline: Pipeline, api: Api) -> None:
    k = key()
    users = run_extract(pipeline, api, path="/flaky429", params={"key": k, "after": 1})
    assert users.height == 5
    first, second = api.state.times("/flaky429", k)
    assert second - first >= 1.0


def test_429_waits_out_retry_after_as_an_http_date(pipeline: Pipeline, api: Api) -> None:
    k = key()
    users = run_extract(pipeline, api, path="/flaky429_date", params={"key": k})
    assert users.height == 5
    first, second = api.state.times("/flaky429_date", k)
    # The date has whole seconds and points about 2 s ahead, so at least 1 s passes.
    assert second - first >= 1.0


def test_503_is_retried_until_the_api_answers(pipeline: Pipeline, api: Api) -> None:
    k = key()
    users = run_extract(pipeline, api, connect={"max_retries": 3}, path="/flaky503", params={"key": k})
    assert users.height == 4
    assert len(api.state.times("/flaky503", k)) == 3


def test_503_beyond_max_retries_is_a_transient_error(pipeline: Pipeline, api: Api) -> None:
    k = key()
    error = failure(pipeline, api, connect={"max_retries": 2}, path="/always503", params={"key": k})
    assert isinstance(error, ConnectorError)
    assert error.transient
    assert "503" in str(error)
    assert "max_retries: 2" in str(error)
    assert len(api.state.times("/always503", k)) == 3


def test_engine_retries_a_transient_failure_from_the_first_page(tmp_path: Path, api: Api) -> None:
    k = key()
    p = Pipeline("http_retry", base_dir=tmp_path, retry=RetryPolicy(attempts=2, initial=0.01, jitter=0))
    # max_retries: 0 in the connector: the first 503 goes up to the engine, which reads again.
    p.connect("api", api.url, max_retries=0)
    p.extract("users", source="api", path="/flaky503", params={"key": k})
    result = p.run()
    assert result.status == "failed"  # 2 engine attempts, 2 503s
    assert len(api.state.times("/flaky503", k)) == 2
    result = p.run()
    assert result.status == "success"
    assert p.table("users").height == 4
    p.close()


# --- bad input ------------------------------------------------------------------------------


def test_slow_page_times_out_with_a_hint(pipeline: Pipeline, api: Api) -> None:
    error = failure(pipeline, api, connect={"timeout": 0.2, "max_retries": 0}, path="/slow")
    assert "timed out after 0.2s" in str(error)
    assert "timeout:" in str(error)


def test_connection_refused_names_the_url(pipeline: Pipeline, free_port: int) -> None:
    pipeline.connect("api", f"http://127.0.0.1:{free_port}/v1")
    pipeline.extract("users", source="api", path="/users")
    result = pipeline.run()
    assert result.status == "failed"
    message = str(result.error)
    assert f"cannot reach http://127.0.0.1:{free_port}/v1/users" in message
    assert "users" in message
    assert isinstance(result.exception, ConnectorError)


def test_404_says_check_the_path(pipeline: Pipeline, api: Api) -> None:
    error = failure(pipeline, api, path="/no/such/thing")
    assert "404" in str(error)
    assert "Check 'path:'" in str(error)


def test_html_answer_is_named(pipeline: Pipeline, api: Api) -> None:
    error = failure(pipeline, api, path="/html")
    assert "answered HTML" in str(error)
    assert "Sign in" in str(error)


def test_html_on_a_later_page_fails_the_step_with_its_own_message(pipeline: Pipeline, api: Api) -> None:
    error = failure(pipeline, api, path="/html_page2", records="data", paginate={"type": "page", "size": 10})
    assert isinstance(error, ConnectorError)
    assert "page 2" in str(error)
    assert "HTML" in str(error)
    assert not pipeline.session.has("users") or pipeline.session.count("users") == 0


def test_missing_records_path_lists_the_keys_there_are(pipeline: Pipeline, api: Api) -> None:
    error = failure(pipeline, api, path="/wrapped", records="result.items")
    assert "'result' has no 'items'" in str(error)
    assert "rows" in str(error)
    assert "records:" in str(error)


def test_object_body_without_records_suggests_the_key(pipeline: Pipeline, api: Api) -> None:
    error = failure(pipeline, api, path="/users")
    assert "keys data, meta" in str(error)
    assert "'data' holds a list" in str(error)


@pytest.mark.parametrize(
    ("paginate", "expected"),
    [
        ({"type": "pages"}, "Styles: page, offset, cursor, link, none"),
        ({"size": 10}, "needs a 'type:'"),
        ({"type": "page", "per_page": 10}, "unknown key 'per_page'"),
        ({"type": "cursor", "param": "cursor"}, "needs 'next:'"),
        ({"type": "offset", "size": 0}, "'paginate: size' must be a whole number"),
        ({"type": "page", "max_pages": "3"}, "max_pages"),
    ],
)
def test_bad_paginate_is_a_spec_error_before_any_request(
    pipeline: Pipeline, api: Api, paginate: dict[str, Any], expected: str
) -> None:
    k = key()
    error = failure(pipeline, api, path="/endless", params={"key": k}, paginate=paginate)
    assert isinstance(error, SpecError)
    assert expected in str(error)
    assert "users" in str(error)
    assert api.state.times("/endless", k) == []


def test_parameter_in_path_is_refused(pipeline: Pipeline, api: Api) -> None:
    error = failure(pipeline, api, path="/users/{{ user_id }}")
    assert isinstance(error, SpecError)
    assert "params:" in str(error)


def test_sql_body_on_an_api_is_refused(pipeline: Pipeline, api: Api) -> None:
    pipeline.connect("api", api.url)
    pipeline.extract("users", source="api", query="SELECT 1")
    result = pipeline.run()
    assert isinstance(result.exception, SpecError)
    assert "path: /users" in str(result.error)


def test_bad_auth_type_lists_the_types(pipeline: Pipeline, api: Api) -> None:
    error = failure(pipeline, api, connect={"auth": {"type": "oauth"}}, path="/users")
    assert isinstance(error, SpecError)
    assert "bearer, basic, header" in str(error)


def test_unknown_connect_key_is_named(pipeline: Pipeline, api: Api) -> None:
    error = failure(pipeline, api, connect={"retries": 3}, path="/users")
    assert "Unknown key 'retries'" in str(error)


def test_loading_into_an_api_is_refused(pipeline: Pipeline, api: Api, tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("a\n1\n")
    pipeline.connect("lake", str(tmp_path))
    pipeline.connect("api", api.url)
    pipeline.extract("rows", source="lake", path="in.csv")
    pipeline.load("rows", to="api", table="things")
    result = pipeline.run()
    assert isinstance(result.exception, SpecError)
    assert "does not write" in str(result.error)


# --- parameters, JSON shapes, incremental ------------------------------------------------------


def test_parameters_are_sent_as_query_parameters(pipeline: Pipeline, api: Api) -> None:
    pipeline.connect("api", api.url)
    pipeline.extract(
        "users",
        source="api",
        path="/echo",
        params={"since": "{{ start_date }}", "q": "name is {{ who }}", "flag": True, "ids": [1, 2]},
    )
    pipeline.run(params={"start_date": "2026-01-01", "who": "a&b=c"}).raise_for_status()
    query = pipeline.table("users")["query"][0]
    assert query == "since=2026-01-01&q=name+is+a%26b%3Dc&flag=true&ids=1&ids=2"


def test_a_missing_parameter_is_named(pipeline: Pipeline, api: Api) -> None:
    pipeline.connect("api", api.url)
    pipeline.extract("users", source="api", path="/echo", params={"since": "{{ start_date }}"})
    result = pipeline.run()
    assert result.status == "failed"
    assert "start_date" in str(result.error)


def test_schema_drift_across_pages_does_not_crash(pipeline: Pipeline, api: Api) -> None:
    rows = run_extract(pipeline, api, path="/drift", records="data", paginate={"type": "page", "size": 1})
    assert rows["id"].to_list() == [1, 2, 3]
    # Declared from page 1: score int64 (2.0 fits, "high" does not), maybe text (never seen a value).
    assert rows["score"].to_list() == [1, 2, None]
    assert rows.schema["maybe"] == pl.String
    assert rows["maybe"].to_list() == [None, '{"k": 1}', "text"]
    assert rows["meta"].to_list() == [{"a": 1}, {"a": 2}, None]
    assert "late" not in rows.columns


def test_fields_left_out_by_drift_mark_the_extract_warned_in_the_run_and_the_store(
    pipeline: Pipeline, api: Api
) -> None:
    pipeline.connect("api", api.url)
    pipeline.extract(
        "users", source="api", path="/drift", records="data", paginate={"type": "page", "size": 1}
    )

    result = pipeline.run()

    assert result.status == "success"
    step = result.steps["users"]
    assert step.status == "warned"
    assert step.error is not None
    assert "late" in step.error
    stored = pipeline.store.get_run(result.run_id)
    assert stored is not None
    (users,) = [s for s in stored.steps if s.step == "users"]
    assert users.status == "warned"
    assert users.detail is not None
    assert any("late" in w for w in users.detail["warnings"])


def test_mixed_types_in_one_page_become_text(pipeline: Pipeline, api: Api) -> None:
    rows = run_extract(pipeline, api, path="/mixed")
    assert rows["v"].to_list() == ["1", "one", '{"n": 1}', None]


def test_a_list_of_scalars_becomes_a_value_column(pipeline: Pipeline, api: Api) -> None:
    rows = run_extract(pipeline, api, path="/scalars")
    assert rows["value"].to_list() == [3, 1, 2]


def test_an_empty_answer_makes_an_empty_table(pipeline: Pipeline, api: Api) -> None:
    rows = run_extract(pipeline, api, path="/empty", records="data", paginate={"type": "page"})
    assert rows.height == 0


def test_incremental_keeps_only_newer_records(pipeline: Pipeline, api: Api) -> None:
    k = key()
    pipeline.connect("api", api.url)
    pipeline.extract("users", source="api", path="/events", params={"key": k}, incremental="updated_at")
    pipeline.run().raise_for_status()
    assert pipeline.table("users")["id"].to_list() == [1, 2, 3, 4, 5, 6]
    pipeline.run().raise_for_status()  # the API now has 10 events; 6 were seen
    assert pipeline.table("users")["id"].to_list() == [7, 8, 9, 10]


def test_a_fixed_query_in_the_path_and_connection_params_are_kept(
    pipeline: Pipeline, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUERY_KEY", "query-key-3141")
    rows = run_extract(
        pipeline, api, connect={"params": {"api_key": "${QUERY_KEY}"}}, path="/echo?fixed=1", params={"a": 2}
    )
    assert rows["query"][0] == "fixed=1&api_key=query-key-3141&a=2"


def test_no_fetching_thread_outlives_the_extract(pipeline: Pipeline, api: Api) -> None:
    import threading

    failure(pipeline, api, path="/html_page2", records="data", paginate={"type": "page", "size": 10})
    pipeline.extract(
        "users", source="api", path="/users", records="data", paginate={"type": "page", "size": 5}
    )
    pipeline.run().raise_for_status()
    assert pipeline.table("users").height == 25
    assert not [t for t in threading.enumerate() if t.name.startswith("etl_nb-http-")]


def test_pages_go_through_the_chosen_parser(
    pipeline: Pipeline, api: Api, page_parser: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from etl_nb.connectors.http import records as http

    fast: list[bool] = []
    real = http._fast_page

    def spy(*args: Any) -> Any:
        batch = real(*args)
        fast.append(batch is not None)
        return batch

    monkeypatch.setattr(http, "_fast_page", spy)
    users = run_extract(pipeline, api, path="/users", records="data", paginate={"type": "page", "size": 10})
    assert users.height == 25
    assert isinstance(users.schema["address"], pl.Struct)
    assert fast == [page_parser == "polars"] * 4
