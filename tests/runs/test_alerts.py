"""Alerts: a webhook to a real HTTP server and an email to a real SMTP server, never failing the run."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from etl_nb.runs.executor import execute_claimed
from etl_nb.runs.submit import queue_run
from etl_nb.store.queue import RunQueue

Run = subprocess.CompletedProcess[str]

BROKEN = """
from etl_nb import Pipeline
p = Pipeline("broken")
p.connect("lake", ".")
p.extract("orders", source="lake", path="missing.csv")
p.run().raise_for_status()
"""


class Hook:
    """A webhook receiver on 127.0.0.1 that answers ``statuses`` in turn (then 200)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.received: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.statuses = list(statuses or [])
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.paths.append(self.path)
                hook.received.append(json.loads(body))
                self.send_response(hook.statuses.pop(0) if hook.statuses else 200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def hook() -> Iterator[Hook]:
    receiver = Hook()
    yield receiver
    receiver.server.shutdown()


class Inbox:
    """An aiosmtpd handler keeping every message."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    inbox = Inbox()
    with socket.socket() as probe:  # aiosmtpd checks it is up by connecting: it needs a real port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("ETL_NB_SMTP_URL", f"smtp://127.0.0.1:{port}?from=etl@example.com")
    yield inbox
    controller.stop()


def test_a_failed_run_posts_a_slack_compatible_webhook_with_the_failing_step(
    project: Path,
    notebook: Callable[..., Path],
    etl_nb: Callable[..., Run],
    hook: Hook,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "t0ps3cret-token")
    monkeypatch.setenv("ETL_NB_ALERT", hook.url + "/services/${HOOK_TOKEN}")
    nb = notebook(project / "broken.ipynb", BROKEN)

    done = etl_nb("run", str(nb), cwd=project)

    assert done.returncode == 1
    (sent,) = hook.received
    assert hook.paths == ["/services/t0ps3cret-token"]
    run = json.loads(etl_nb("runs", "--json", cwd=project).stdout)[0]
    assert sent["run_id"] == run["id"]
    assert (sent["pipeline"], sent["status"], sent["failing_step"]) == ("broken", "failed", "orders")
    assert "missing.csv" in sent["error"]
    assert sent["text"].startswith(f"etl_nb: broken run {run['id']} failed at step 'orders'")
    assert sent["link"] == f"etl-nb show {run['id']}"
    assert run["alerts"] == [{"target": hook.url + "/services/${HOOK_TOKEN}", "delivered": True}]
    assert "t0ps3cret-token" not in json.dumps(run)


def test_a_successful_run_alerts_only_when_asked(
    project: Path, notebook: Callable[..., Path], hook: Hook
) -> None:
    nb = notebook(project / "fine.ipynb", "x = 1")
    quiet = queue_run(nb, {}, trigger="schedule", alerts=[hook.url])
    loud = queue_run(nb, {}, trigger="schedule", alerts=[hook.url], alert_on="always")

    execute_claimed(quiet)
    execute_claimed(loud)

    assert [s["run_id"] for s in hook.received] == [loud]
    assert hook.received[0]["status"] == "success"


def test_an_email_alert_goes_through_the_smtp_server(
    project: Path, notebook: Callable[..., Path], smtp: Inbox
) -> None:
    nb = notebook(project / "broken.ipynb", BROKEN)
    run_id = queue_run(nb, {}, trigger="schedule", alerts=["mailto:ops@example.com"])

    execute_claimed(run_id)

    ((recipients, message),) = smtp.messages
    assert recipients == ["ops@example.com"]
    assert message["Subject"] == "[etl_nb] broken: run failed"
    assert message["From"] == "etl@example.com"
    body = message.get_payload()
    assert f"Run: {run_id}" in body
    assert "Failing step: orders" in body


def test_a_webhook_that_fails_once_is_retried(project: Path, notebook: Callable[..., Path]) -> None:
    flaky = Hook(statuses=[503])
    nb = notebook(project / "broken.ipynb", BROKEN)
    run_id = queue_run(nb, {}, trigger="schedule", alerts=[flaky.url])

    execute_claimed(run_id)

    assert len(flaky.received) == 2
    assert RunQueue().alert_results(run_id) == [{"target": flaky.url, "delivered": True}]
    flaky.server.shutdown()


def test_an_undeliverable_alert_is_logged_recorded_and_never_fails_the_run(
    project: Path,
    notebook: Callable[..., Path],
    etl_nb: Callable[..., Run],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("ETL_NB_SMTP_URL", raising=False)
    nb = notebook(project / "fine.ipynb", "x = 1")
    run_id = queue_run(
        nb,
        {},
        trigger="schedule",
        alerts=["http://127.0.0.1:9/nobody", "mailto:ops@example.com"],
        alert_on="always",
    )

    result = execute_claimed(run_id)

    assert result is not None
    assert result.status == "success"
    shown = json.loads(etl_nb("show", run_id, "--json", cwd=project).stdout)
    assert shown["status"] == "success"
    assert [a["delivered"] for a in shown["alerts"]] == [False, False]
    assert "ConnectError" in shown["alerts"][0]["error"]
    assert "ETL_NB_SMTP_URL is not set" in shown["alerts"][1]["error"]
    failures = [r.getMessage() for r in caplog.records if "alert failed" in r.getMessage()]
    assert len(failures) == 2
    assert all(f"run_id='{run_id}'" in line for line in failures)
