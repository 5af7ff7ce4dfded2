"""The REST API under ``/etl-nb/api/``: thin handlers over ``PanelService``.

Every handler is an ``APIHandler`` behind ``@tornado.web.authenticated``, so
Jupyter's token and XSRF checks apply. Errors become JSON answers
(``{"message": ..., "reason": ...}``, the shape Jupyter's own API errors
have) in one place, ``json_errors``; the service's work runs in a thread,
never on the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypeVar

import tornado.web
from jupyter_server.base.handlers import APIHandler, JupyterHandler

from etl_nb.errors import EtlError
from etl_nb.server.errors import ApiError
from etl_nb.server.service import PanelService

API = "/etl-nb/api"
T = TypeVar("T")
Method = Callable[..., Awaitable[None]]


def json_errors(method: Method) -> Method:
    """Answer an ``ApiError``, a user mistake (``EtlError``) or a bug as JSON with the right status."""

    @functools.wraps(method)
    async def wrapper(self: EtlNbHandler, *args: Any, **kwargs: Any) -> None:
        try:
            await method(self, *args, **kwargs)
        except ApiError as exc:
            self.answer_error(exc.status, exc.message)
        except EtlError as exc:
            self.answer_error(400, exc.message)
        except tornado.web.HTTPError:
            raise  # Jupyter's own answers (403 and friends) keep their shape
        except Exception as exc:
            self.log.exception("etl_nb: %s %s failed", self.request.method, self.request.path)
            failure = f"{exc.__class__.__name__}: {exc}"
            self.answer_error(500, f"The etl_nb server extension failed ({failure}); see the server log.")

    return wrapper


class EtlNbHandler(APIHandler):
    """Base of the API's handlers: the service, JSON in and out."""

    service: PanelService

    def initialize(self, service: PanelService) -> None:
        """Tornado passes the app's ``PanelService`` to every handler."""
        self.service = service

    async def off_loop(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function`` (store and file work) in a thread, so the server stays responsive."""
        return await asyncio.to_thread(function, *args)

    def answer(self, data: Any, status: int = 200) -> None:
        """Send ``data`` as JSON."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, default=str))

    def answer_error(self, status: int, message: str) -> None:
        """Send an error as Jupyter's API does: ``{"message", "reason"}``."""
        self.clear()
        self.answer({"message": message, "reason": HTTPStatus(status).phrase}, status)

    def json_body(self) -> Any:
        """The request's JSON body, or a 400 saying it is not JSON."""
        try:
            return json.loads(self.request.body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"The request body is not valid JSON ({exc}).") from None


class VersionHandler(EtlNbHandler):
    """``GET version``: lets the panel detect a missing or mismatched server extension."""

    @tornado.web.authenticated
    @json_errors
    async def get(self) -> None:
        """The versions."""
        self.answer(self.service.version())


class PipelinesHandler(EtlNbHandler):
    """``GET pipelines``: every notebook with ``%etl`` cells under the server's root."""

    @tornado.web.authenticated
    @json_errors
    async def get(self) -> None:
        """The pipelines, each with its last run."""
        self.answer({"pipelines": await self.off_loop(self.service.pipelines)})


class RunsHandler(EtlNbHandler):
    """``GET runs[?pipeline=NAME_OR_PATH&limit=N]`` and ``POST runs``."""

    @tornado.web.authenticated
    @json_errors
    async def get(self) -> None:
        """Recent runs, newest first."""
        pipeline = self.get_query_argument("pipeline", None)
        limit_text = self.get_query_argument("limit", "20")
        if not limit_text.isdigit():
            raise ApiError(400, f"'limit' must be a whole number, not '{limit_text}'.")
        runs = await self.off_loop(self.service.runs, pipeline, int(limit_text))
        self.answer({"runs": runs})

    @tornado.web.authenticated
    @json_errors
    async def post(self) -> None:
        """Start a recorded run; answers at once (202) with its id."""
        body = self.json_body()
        self.answer(await self.off_loop(self.service.submit, body), status=202)


class RunHandler(EtlNbHandler):
    """``GET runs/ID``: one run with its steps."""

    @tornado.web.authenticated
    @json_errors
    async def get(self, run_id: str) -> None:
        """The run."""
        self.answer(await self.off_loop(self.service.run, run_id))


class SchedulesHandler(EtlNbHandler):
    """``GET schedules`` and ``POST schedules``."""

    @tornado.web.authenticated
    @json_errors
    async def get(self) -> None:
        """Every schedule with its next slot and last run."""
        self.answer({"schedules": await self.off_loop(self.service.schedules)})

    @tornado.web.authenticated
    @json_errors
    async def post(self) -> None:
        """Add a schedule (201)."""
        body = self.json_body()
        self.answer(await self.off_loop(self.service.add_schedule, body), status=201)


class ScheduleHandler(EtlNbHandler):
    """``PATCH schedules/ID`` (pause, resume) and ``DELETE schedules/ID``."""

    @tornado.web.authenticated
    @json_errors
    async def patch(self, schedule_id: str) -> None:
        """``{"paused": true|false}``."""
        body = self.json_body()
        self.answer(await self.off_loop(self.service.update_schedule, schedule_id, body))

    @tornado.web.authenticated
    @json_errors
    async def delete(self, schedule_id: str) -> None:
        """Remove the schedule; answers with what was removed."""
        self.answer(await self.off_loop(self.service.remove_schedule, schedule_id))


class RunNotebookHandler(JupyterHandler):
    """``GET runs/ID/notebook``: the executed notebook as HTML, to read in a browser tab.

    Executed notebooks live under ``.etl_nb/``, which Jupyter's contents API
    hides, so the panel links here. The page is served sandboxed: outputs
    are shown, their scripts never run with the user's session.
    """

    service: PanelService

    def initialize(self, service: PanelService) -> None:
        """Tornado passes the app's ``PanelService``."""
        self.service = service

    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        """The page, or a plain-text reason it cannot be shown."""
        theme = "dark" if self.get_query_argument("theme", "light") == "dark" else "light"
        try:
            path = await asyncio.to_thread(self.service.executed_notebook, run_id)
            html = await asyncio.to_thread(_notebook_html, path, theme)
        except ApiError as exc:
            self.set_status(exc.status)
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(exc.message)
            return
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header(
            "Content-Security-Policy",
            "sandbox allow-popups; default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
            "font-src data:",
        )
        self.finish(html)


def _notebook_html(path: Path, theme: str) -> str:
    # nbconvert is heavy to import and only needed here.
    from nbconvert import HTMLExporter

    make: Callable[..., Any] = HTMLExporter
    exporter = make(template_name="lab", theme=theme)
    html, _ = exporter.from_filename(str(path))
    return str(html)


def routes(service: PanelService) -> list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]]:
    """The API's URL patterns (relative to the server's base URL) and handlers."""
    kwargs = {"service": service}
    run_id = r"(?P<run_id>[A-Za-z0-9_.:-]+)"
    schedule_id = r"(?P<schedule_id>[A-Za-z0-9_-]+)"
    return [
        (f"{API}/version", VersionHandler, kwargs),
        (f"{API}/pipelines", PipelinesHandler, kwargs),
        (f"{API}/runs", RunsHandler, kwargs),
        (f"{API}/runs/{run_id}", RunHandler, kwargs),
        (f"{API}/runs/{run_id}/notebook", RunNotebookHandler, kwargs),
        (f"{API}/schedules", SchedulesHandler, kwargs),
        (f"{API}/schedules/{schedule_id}", ScheduleHandler, kwargs),
    ]
