"""Alerts when a run ends: a Slack-compatible webhook, or an email through SMTP.

Targets come from the schedule (``--alert``), else from ``ETL_NB_ALERT``
(several separated by commas). An ``https://`` target receives a JSON POST
(``text`` for Slack and Mattermost, plus pipeline, run id, status, failing
step, error and a link); a ``mailto:`` target an email sent through the
server in ``ETL_NB_SMTP_URL`` (``smtp://user:password@host:port`` or
``smtps://``; ``?from=`` sets the sender, ``?starttls=1`` upgrades a plain
connection). ``${VAR}`` in a target is resolved when the alert is sent and
never shown. Each delivery is retried with backoff (tenacity); one that
still fails is logged and recorded on the run, and never fails the run.
"""

from __future__ import annotations

import os
import smtplib
import ssl
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from etl_nb._logging import get_logger
from etl_nb._masking import redact
from etl_nb._secrets import resolve
from etl_nb.errors import EtlError
from etl_nb.retry import RetryPolicy
from etl_nb.store.queue import RunQueue
from etl_nb.store.runs import RunRecord

ALERT_ENV = "ETL_NB_ALERT"
SMTP_ENV = "ETL_NB_SMTP_URL"
BASE_URL_ENV = "ETL_NB_BASE_URL"  # where the panel's server answers, for the link in an alert


class AlertError(EtlError):
    """An alert that could not be delivered (recorded on the run, never raised out of it)."""


def targets_for(alerts: list[str] | None) -> list[str]:
    """The run's own targets, else the default ones from ``ETL_NB_ALERT``."""
    if alerts:
        return list(alerts)
    return [t.strip() for t in (os.environ.get(ALERT_ENV) or "").split(",") if t.strip()]


def send_alerts(queue: RunQueue, run_id: str, attempts: int = 3, wait: float = 0.5) -> list[dict[str, Any]]:
    """Send the alerts that ``run_id``'s end calls for; returns (and records) each delivery."""
    job = queue.job(run_id)
    record = queue.store.get_run(run_id)
    if job is None or record is None:
        return []
    when = job.alert_on or "failure"
    if record.status in ("queued", "running") or (when == "failure" and record.status != "failed"):
        return []
    results: list[dict[str, Any]] = []
    log = get_logger(pipeline=record.pipeline, run_id=run_id)
    for target in targets_for(job.alerts):
        shown = redact(target)
        try:
            _deliver(target, record, attempts=attempts, wait=wait)
        except Exception as exc:  # an alert never fails the run: record why, go on
            reason = redact(f"{exc.__class__.__name__}: {exc}")
            log.warning("alert failed", target=shown, error=reason)
            results.append({"target": shown, "delivered": False, "error": reason})
        else:
            log.info("alert sent", target=shown, status=record.status)
            results.append({"target": shown, "delivered": True})
    if results:
        queue.record_alerts(run_id, results)
    return results


def payload(record: RunRecord) -> dict[str, Any]:
    """The webhook body: Slack's ``text`` plus the run's fields for other receivers."""
    failing = next((s.step for s in record.steps if s.status == "failed"), None)
    link = _link(record.id)
    error = (record.error or "").strip()
    first_line = error.splitlines()[0][:300] if error else ""
    text = f"etl_nb: {record.pipeline} run {record.id} {record.status}"
    if failing:
        text += f" at step '{failing}'"
    if first_line:
        text += f": {first_line}"
    return {
        "text": f"{text}. Open it: {link}",
        "pipeline": record.pipeline,
        "run_id": record.id,
        "status": record.status,
        "failing_step": failing,
        "error": error or None,
        "link": link,
    }


def _link(run_id: str) -> str:
    base = (os.environ.get(BASE_URL_ENV) or "").rstrip("/")
    return f"{base}/etl-nb/api/runs/{run_id}" if base else f"etl-nb show {run_id}"


def _deliver(target: str, record: RunRecord, *, attempts: int, wait: float) -> None:
    resolved = resolve(target.strip())
    send = _send_email if resolved.lower().startswith("mailto:") else _post_webhook
    policy = RetryPolicy(attempts=attempts, initial=wait, jitter=0)
    # Any failure is worth another try: a receiver that is down now may answer in a second.
    policy.call(lambda: send(resolved, record), retry_on=lambda error: isinstance(error, Exception))


def _post_webhook(url: str, record: RunRecord) -> None:
    import httpx  # only when a webhook alert is sent: httpx is an optional extra

    if not url.lower().startswith(("http://", "https://")):
        raise AlertError("the target is neither an http(s) URL nor mailto:")
    answer = httpx.post(url, json=payload(record), timeout=10, follow_redirects=False)
    if answer.status_code >= 300:
        raise AlertError(f"the webhook answered HTTP {answer.status_code}")


def _send_email(target: str, record: RunRecord) -> None:
    server = os.environ.get(SMTP_ENV)
    if not server:
        raise AlertError(f"{SMTP_ENV} is not set: set it to smtp://host:port to send email alerts")
    url = urlsplit(resolve(server))
    options = {k: v[-1] for k, v in parse_qs(url.query).items()}
    body = payload(record)
    message = EmailMessage()
    message["Subject"] = f"[etl_nb] {record.pipeline}: run {record.status}"
    message["From"] = options.get("from", "etl-nb@localhost")
    message["To"] = unquote(target.split(":", 1)[1]).split("?")[0]
    message.set_content(
        f"{body['text']}\n\nPipeline: {record.pipeline}\nRun: {record.id}\nStatus: {record.status}\n"
        f"Failing step: {body['failing_step'] or '-'}\n\n{body['error'] or ''}\n"
    )
    secure = url.scheme == "smtps"
    client_class = smtplib.SMTP_SSL if secure else smtplib.SMTP
    with client_class(url.hostname or "127.0.0.1", url.port or (465 if secure else 25), timeout=10) as smtp:
        if options.get("starttls") in ("1", "true"):
            smtp.starttls(context=ssl.create_default_context())
        if url.username:
            smtp.login(unquote(url.username), unquote(url.password or ""))
        smtp.send_message(message)
