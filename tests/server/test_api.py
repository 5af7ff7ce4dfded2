"""The REST API the panel talks to, against a real Jupyter server and real papermill runs."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import nbformat
import pytest
from tornado.httpclient import HTTPClientError

from tests.server.conftest import Fetch

RUN_DEADLINE = 120  # seconds a quickstart run may take on a busy machine before the test gives up


async def test_version_names_the_package_and_api_version(api: Any) -> None:
    status, body = await api("version")
    assert status == 200
    assert body["api_version"] == 1
    assert body["version"]


async def test_a_request_without_the_token_is_refused(jp_fetch: Fetch) -> None:
    for path in ("version", "pipelines", "runs"):
        with pytest.raises(HTTPClientError) as refused:
            await jp_fetch("etl-nb", "api", path, headers={"Authorization": ""})
        assert refused.value.code == 403


async def test_a_post_from_a_browser_session_without_the_xsrf_token_is_refused(
    jp_fetch: Fetch, jp_serverapp: Any, workspace: Path
) -> None:
    cookies = await _browser_login(jp_fetch, jp_serverapp.identity_provider.token)
    body = json.dumps({"notebook": "quickstart.ipynb", "params": {}})
    cookie_header = "; ".join(f"{k}={v}" for k, v in cookies.items())
    headers = {"Authorization": "", "Cookie": cookie_header}
    with pytest.raises(HTTPClientError) as refused:
        await jp_fetch("etl-nb", "api", "runs", method="POST", body=body, headers=headers)
    assert refused.value.code == 403
    assert b"xsrf" in (refused.value.response.body if refused.value.response else b"").lower()
    # The same session with the XSRF token (as JupyterLab sends it) is let through.
    accepted = await jp_fetch(
        "etl-nb",
        "api",
        "runs",
        method="POST",
        body=json.dumps({"notebook": "missing.ipynb"}),
        headers={"Authorization": "", "Cookie": cookie_header, "X-XSRFToken": cookies["_xsrf"]},
        raise_error=False,
    )
    assert accepted.code == 404


async def _browser_login(jp_fetch: Fetch, token: str) -> dict[str, str]:
    """Log in with the token as the login page does; the session's cookies, ``_xsrf`` among them."""
    page = await jp_fetch("login", headers={"Authorization": ""})
    cookies = _cookies(page.headers.get_list("Set-Cookie"))
    form = urllib.parse.urlencode({"_xsrf": cookies["_xsrf"], "password": token})
    login = await jp_fetch(
        "login",
        method="POST",
        body=form,
        headers={"Authorization": "", "Cookie": f"_xsrf={cookies['_xsrf']}"},
        follow_redirects=False,
        raise_error=False,
    )
    assert login.code == 302
    return cookies | _cookies(login.headers.get_list("Set-Cookie"))


def _cookies(headers: list[str]) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for header in headers:
        jar.load(header)
    return {name: morsel.value for name, morsel in jar.items()}


async def test_pipelines_lists_notebooks_with_etl_cells_with_their_dag_and_parameters(
    api: Any, workspace: Path
) -> None:
    plain = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nbformat.write(plain, workspace / "plain.ipynb")
    status, body = await api("pipelines")
    assert status == 200
    [pipeline] = body["pipelines"]
    assert pipeline["path"] == "quickstart.ipynb"
    assert pipeline["name"] == "quickstart"
    ids = [s["id"] for s in pipeline["steps"]]
    assert {"orders", "rates", "customers", "revenue", "revenue_share", "check:revenue"} <= set(ids)
    assert ["orders", "revenue"] in pipeline["edges"]
    assert {"name": "start_date", "default": "2026-01-01", "type": "str"} in pipeline["parameters"]
    assert pipeline["problems"] == []
    assert pipeline["last_run"] is None


async def test_pipelines_report_problems_with_their_cell_numbers(api: Any, jp_root_dir: Path) -> None:
    folder = jp_root_dir / "team"
    folder.mkdir()
    cells = [
        nbformat.v4.new_markdown_cell("A pipeline with a mistake"),
        nbformat.v4.new_code_cell("%%etl transform totals\nSELECT sum(amount) FROM missing_orders"),
    ]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), folder / "broken.ipynb")
    _, body = await api("pipelines")
    [pipeline] = body["pipelines"]
    assert pipeline["path"] == "team/broken.ipynb"
    [problem] = pipeline["problems"]
    assert problem["cell"] == 2
    assert "missing_orders" in problem["message"]


async def test_pipelines_see_a_notebook_change_on_the_next_call(api: Any, workspace: Path) -> None:
    _, before = await api("pipelines")
    notebook = nbformat.read(workspace / "quickstart.ipynb", as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell("%%etl transform top\nSELECT * FROM revenue LIMIT 3"))
    nbformat.write(notebook, workspace / "quickstart.ipynb")
    _, after = await api("pipelines")
    assert "top" not in [s["id"] for s in before["pipelines"][0]["steps"]]
    assert ["revenue", "top"] in after["pipelines"][0]["edges"]


@pytest.mark.parametrize("body", [b"{not json", b'["quickstart.ipynb"]', b'{"notebook": 3}'])
async def test_post_runs_with_a_malformed_body_is_a_400_saying_what_to_send(api: Any, body: bytes) -> None:
    status, answer = await api("runs", method="POST", body=body)
    assert status == 400
    assert answer["message"]


async def test_post_runs_refuses_a_parameter_name_that_is_not_an_identifier(
    api: Any, workspace: Path
) -> None:
    status, answer = await api(
        "runs", method="POST", body={"notebook": "quickstart.ipynb", "params": {"start date": "x"}}
    )
    assert status == 400
    assert "start date" in answer["message"]


@pytest.mark.parametrize("path", ["../outside.ipynb", "/etc/passwd", "data/../../x.ipynb"])
async def test_post_runs_refuses_a_path_outside_the_root(api: Any, workspace: Path, path: str) -> None:
    (workspace.parent / "outside.ipynb").write_text("{}")
    status, answer = await api("runs", method="POST", body={"notebook": path})
    assert status == 403
    assert "outside the server's root" in answer["message"]


async def test_post_runs_refuses_a_symlink_leading_out_of_the_root(api: Any, workspace: Path) -> None:
    (workspace.parent / "elsewhere.ipynb").write_text((workspace / "quickstart.ipynb").read_text())
    (workspace / "link.ipynb").symlink_to(workspace.parent / "elsewhere.ipynb")
    status, _ = await api("runs", method="POST", body={"notebook": "link.ipynb"})
    assert status == 403


async def test_unknown_ids_and_notebooks_are_404s(api: Any, workspace: Path) -> None:
    assert (await api("runs", "20990101T000000-deadbeef"))[0] == 404
    status, answer = await api("runs", method="POST", body={"notebook": "nope.ipynb"})
    assert status == 404
    assert "nope.ipynb" in answer["message"]


async def test_a_run_goes_from_post_to_success_with_rows_and_its_executed_notebook(
    api: Any, jp_fetch: Fetch, workspace: Path
) -> None:
    status, started = await api(
        "runs", method="POST", body={"notebook": "quickstart.ipynb", "params": {"start_date": "2026-01-01"}}
    )
    assert status == 202
    assert started["status"] == "queued"
    run_id = started["id"]

    status, first = await api("runs", run_id)
    assert status == 200
    assert first["status"] in ("queued", "running", "success")

    run = await _finished(api, run_id)
    assert run["status"] == "success", run["error"]
    assert run["trigger"] == "api"
    assert run["params"]["start_date"] == "2026-01-01"
    assert run["notebook_path"] == "quickstart.ipynb"
    rows = {s["step"]: s["rows"] for s in run["steps"]}
    assert rows["revenue"] > 0
    assert run["rows"] > 0
    assert (workspace / "data" / "output" / "revenue.parquet").exists()

    _, listed = await api("runs", params={"pipeline": "quickstart.ipynb"})
    assert listed["runs"][0]["id"] == run_id
    _, pipelines = await api("pipelines")
    last = pipelines["pipelines"][0]["last_run"]
    assert last["id"] == run_id
    assert last["steps"]["revenue"]["status"] == "success"
    assert last["steps"]["revenue"]["rows"] == rows["revenue"]

    page = await jp_fetch("etl-nb", "api", "runs", run_id, "notebook")
    assert page.headers["Content-Type"].startswith("text/html")
    assert "sandbox" in page.headers["Content-Security-Policy"]
    assert b"revenue_eur" in page.body


async def test_runs_of_another_pipeline_are_left_out_when_filtering(api: Any, workspace: Path) -> None:
    _, body = await api("runs", params={"pipeline": "some_other_pipeline"})
    assert body["runs"] == []
    status, _ = await api("runs", params={"limit": "lots"})
    assert status == 400


async def _finished(api: Any, run_id: str) -> dict[str, Any]:
    for _ in range(RUN_DEADLINE * 4):
        _, run = await api("runs", run_id)
        if run["status"] not in ("queued", "running"):
            return dict(run)
        await asyncio.sleep(0.25)
    raise AssertionError(f"run {run_id} did not finish: {run}")


async def test_post_runs_refuses_a_parameter_the_notebook_does_not_define_with_the_closest_name(
    api: Any, workspace: Path
) -> None:
    status, answer = await api(
        "runs", method="POST", body={"notebook": "quickstart.ipynb", "params": {"start_dat": "2026-01-01"}}
    )
    assert status == 400
    assert "start_date" in answer["message"]
    _, runs = await api("runs")
    assert runs["runs"] == []


async def test_a_schedule_is_added_paused_resumed_and_removed(api: Any, workspace: Path) -> None:
    assert await api("schedules") == (200, {"schedules": []})
    status, added = await api(
        "schedules",
        method="POST",
        body={"notebook": "quickstart.ipynb", "cron": "0 6 * * *", "timezone": "Europe/Paris"},
    )
    assert status == 201
    assert added["pipeline"] == "quickstart"
    assert added["notebook_path"] == "quickstart.ipynb"
    assert added["timezone"] == "Europe/Paris"
    assert added["next_slot"].endswith(("+01:00", "+02:00"))
    assert not added["paused"]

    status, paused = await api("schedules", added["id"], method="PATCH", body={"paused": True})
    assert (status, paused["paused"], paused["next_slot"]) == (200, True, None)
    _, resumed = await api("schedules", added["id"], method="PATCH", body={"paused": False})
    assert resumed["paused"] is False
    _, listed = await api("schedules")
    assert [s["id"] for s in listed["schedules"]] == [added["id"]]

    status, removed = await api("schedules", added["id"], method="DELETE")
    assert (status, removed["id"]) == (200, added["id"])
    assert await api("schedules") == (200, {"schedules": []})


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"notebook": "quickstart.ipynb", "cron": "every morning"}, "cron"),
        ({"notebook": "quickstart.ipynb", "cron": "0 6 * * *", "timezone": "Mars/Olympus"}, "Mars/Olympus"),
        ({"notebook": "quickstart.ipynb", "cron": "0 6 * * *", "params": {"start": "x"}}, "start_date"),
        ({"notebook": "quickstart.ipynb", "cron": "0 6 * * *", "every": "day"}, "every"),
        ({"notebook": "../quickstart.ipynb", "cron": "0 6 * * *"}, "outside the server's root"),
    ],
)
async def test_a_bad_schedule_is_refused_with_the_reason(
    api: Any, workspace: Path, body: dict[str, Any], words: str
) -> None:
    status, answer = await api("schedules", method="POST", body=body)
    assert status in (400, 403)
    assert words in answer["message"]


async def test_unknown_schedule_ids_are_404s_and_a_bad_patch_is_a_400(api: Any, workspace: Path) -> None:
    assert (await api("schedules", "feedbeef", method="PATCH", body={"paused": True}))[0] == 404
    assert (await api("schedules", "feedbeef", method="DELETE"))[0] == 404
    _, added = await api("schedules", method="POST", body={"notebook": "quickstart.ipynb", "cron": "@daily"})
    status, answer = await api("schedules", added["id"], method="PATCH", body={"paused": "yes"})
    assert status == 400
    assert "paused" in answer["message"]
