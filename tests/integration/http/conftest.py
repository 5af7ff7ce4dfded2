"""A real REST API on 127.0.0.1, started once per test session.

``ThreadingHTTPServer`` (standard library, no new dependency) serves every
pagination style, three kinds of auth, redirects, 429 and 503 answers, slow pages, HTML,
404s and nested JSON. Stateful endpoints (retries, incremental) count hits
per ``key`` query parameter so that tests never share state, and the server
records when each request arrived, so tests can check that Retry-After was
waited out.
"""

from __future__ import annotations

import base64
import email.utils
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

BEARER_TOKEN = "s3cr3t-bearer-token-42"
BASIC_USER, BASIC_PASSWORD = "alice", "wonder-land-pw"
API_KEY = "k3y-abc-123-xyz"

Answer = tuple[int, dict[str, str], Any]


def user(i: int) -> dict[str, Any]:
    """User ``i`` of the fake API: nested address (struct), tags (list)."""
    return {
        "id": i,
        "name": f"user{i}",
        "email": f"user{i}@example.com",
        "active": i % 2 == 0,
        "address": {"city": ["Paris", "Lyon", "Nice"][i % 3], "geo": {"lat": i / 10, "lng": -i / 10}},
        "tags": [f"t{j}" for j in range(i % 3)],
    }


USERS = [user(i) for i in range(1, 26)]


@dataclass
class ApiState:
    """What the server saw: request times and counts per (path, key)."""

    hits: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    headers: dict[tuple[str, str], list[dict[str, str]]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, path: str, key: str, headers: dict[str, str]) -> int:
        with self.lock:
            self.hits[(path, key)].append(time.monotonic())
            self.headers[(path, key)].append(headers)
            return len(self.hits[(path, key)])

    def times(self, path: str, key: str = "") -> list[float]:
        """Arrival times (monotonic seconds) of the requests to ``path`` with ``key``."""
        with self.lock:
            return list(self.hits[(path, key)])


@dataclass
class Api:
    """The running server: its base URL, what it saw, and the credentials it accepts."""

    url: str
    state: ApiState
    bearer_token: str = BEARER_TOKEN
    basic_user: str = BASIC_USER
    basic_password: str = BASIC_PASSWORD
    api_key: str = API_KEY
    users: list[dict[str, Any]] = field(default_factory=lambda: USERS)


def _int(q: dict[str, str], name: str, default: int) -> int:
    return int(q.get(name, default))


def _page_of(items: list[Any], q: dict[str, str]) -> list[Any]:
    page, size = _int(q, "page", 1), _int(q, "per_page", 10)
    return items[(page - 1) * size : page * size]


def _auth_ok(headers: dict[str, str], wanted: str, value: str) -> bool:
    return headers.get(wanted.lower()) == value


def make_routes(state: ApiState) -> dict[str, Callable[[dict[str, str], dict[str, str], str], Answer]]:
    """Route name -> handler(query, headers, raw query) -> (status, headers, JSON body or bytes)."""

    def users(q: dict[str, str], h: dict[str, str], raw: str) -> Answer:
        page = _int(q, "page", 1)
        return 200, {}, {"data": _page_of(USERS, q), "meta": {"page": page, "total": len(USERS)}}

    def users_offset(q: dict[str, str], h: dict[str, str], raw: str) -> Answer:
        offset, limit = _int(q, "offset", 0), _int(q, "limit", 10)
        return 200, {}, USERS[offset : offset + limit]

    def users_cursor(q: dict[str, str], h: dict[str, str], raw: str) -> Answer:
        start = int(q.get("cursor", "c0")[1:])
        items = USERS[start : start + 10]
        following = f"c{start + 10}" if start + 10 < len(USERS) else None
        return 200, {}, {"items": items, "meta": {"next_cursor": following}}

    def users_link(q: dict[str, str], h: dict[str, str], raw: str) -> Answer:
        page = _int(q, "page", 1)
        headers: dict[str, str] = {}
        if page * 10 < len(USERS):
            headers["Link"] = (
                f'</users_link?page={page + 1}&per_page=10>; rel="next", </users_link>; rel="first"'
            )
        return 200, headers, _page_of(USERS, {"page": str(page), "per_page": "10"})

    def users_all(q: dict[str, str], h: dict[str, str], raw: str) -> Answer:
        return 200, {}, USERS

    def endless(q: dict[str, str], h: dict[str, str], raw: str) -> Answer:
        state.record("/endless", q.get("key", ""), h)
        size = _int(q, "per_page", 10)
        page = _int(q, "page", 1)
        return 200, {}, {"data": [{"id": page * 1000 + i} for i in range(size)]}

    def secure(kind: str) -> Callable[[dict[str, str], dict[str, str], str], Answer]:
        expected = {
            "bearer": ("Authorization", f"Bearer {BEARER_TOKEN}"),
            "basic": (
                "Authorization",
                "Basic " + base64.b64encode(f"{BASIC_USER}:{BASIC_PASSWORD}".encode()).decode(),
            ),
            "header": ("X-API-Key", API_KEY),
        }[kind]

        def handler(q: dict[str, str], h: dict[str, str], raw: str) -> Answer:
            if not _auth_ok(h, *expected):
                return 401, {"WWW-Authenticate": "Bearer"}, {"error": "unauthorized"}
            return 200, {}, {"data": USERS[:3]}

        return handler

    def echo_bad(q: dict[str, str], h: dict[str, str], raw: str) -> Answer:
        # A careless API that repeats the credentials it got in its error body.
        return 400, {}, {"error": f"bad filter, token was {h.get('authorization', '')}"}

    def flaky429(q: dict[str, str], h: dict[str, str], raw: str) -> Answer:
        n = state.record("/flaky429", q.get("key", ""), h)
        if n == 1:
            return 429, {"Retry-After": q.get("after", "1")}, {"error": "slow down"}
        return 200, {}, USERS[:5]

    def flaky429_date(q: dict[str, str], h: dict[str, str], raw: str) -> Answer:
        n = state.record("/flaky429_date", q.get("key", ""), h)
        if n == 1:
            when = email.utils.formatdate(time.time() + 2, usegmt=True)
            return 429, {"Retry-After": when}, {"error": "slow down"}
        return 200, {}, USERS[:5]

    def flaky503(q: dict[str, str], h: dict[str, str], raw: str) -> Answer:
        n = state.record("/flaky503", q.get("key", ""), h)
        if n <= 2:
            return 503, {}, {"error": "unavailable"}
        return 200, {}, USERS[:4]

    def always503(q: dict[str, str], h: dict[str, str], raw: str) -> Answer:
        state.record("/always503", q.get("key", ""), h)
        return 503, {"Retry-After": "0"}, {"error": "down"}

    def slow(q: dict[str, str], h: dict[str, str], raw: str) -> Answer:
        time.sleep(1.5)
        return 200, {}, USERS[:2]

    def html(q: dict[str, str], h: dict[str, str], raw: str) -> Answer:
        page = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Please log in</body></html>"
        return 200, {"Content-Type": "text/html; charset=utf-8"}, page

    def html_page2(q: dict[str, str], h: dict[str, str], raw: str) -> Answer:
        if _int(q, "page", 1) >= 2:
            return html(q, h, raw)
        return users(q, h, raw)

    def wrapped(q: dict[str, str], h: dict[str, str], raw: str) -> Answer:
        return 200, {}, {"result": {"rows": USERS[:4]}, "count": 4}

    def drift(q: dict[str, str], h: dict[str, str], raw: str) -> Answer:
        pages = [
            [{"id": 1, "score": 1, "meta": {"a": 1}, "maybe": None}],
            [{"id": 2, "score": 2.0, "meta": {"a": 2, "b": "x"}, "maybe": {"k": 1}, "late": "n"}],
            [{"id": 3, "score": "high", "meta": None, "maybe": "text"}],
        ]
        page = _int(q, "page", 1)
        return 200, {}, {"data": pages[page - 1] if page <= len(pages) else []}

    def mixed(q: dict[str, str], h: dict[str, str], raw: str) -> Answer:
        return 200, {}, [{"id": 1, "v": 1}, {"id": 2, "v": "one"}, {"id": 3, "v": {"n": 1}}, {"id": 4}]

    def echo(q: dict[str, str], h: dict[str, str], raw: str) -> Answer:
        return 200, {}, [{"query": raw, "path_was": "/echo"}]

    def events(q: dict[str, str], h: dict[str, str], raw: str) -> Answer:
        n = state.record("/events", q.get("key", ""), h)
        count = 6 if n == 1 else 10
        return (
            200,
            {},
            [{"id": i, "updated_at": f"2026-01-{i:02d}T00:00:00Z", "kind": "e"} for i in range(1, count + 1)],
        )

    def scalars(q: dict[str, str], h: dict[str, str], raw: str) -> Answer:
        return 200, {}, [3, 1, 2]

    def empty(q: dict[str, str], h: dict[str, str], raw: str) -> Answer:
        return 200, {}, {"data": []}

    def redirect(q: dict[str, str], h: dict[str, str], raw: str) -> Answer:
        return int(q.get("status", "302")), {"Location": q["to"]}, b""

    def loop(q: dict[str, str], h: dict[str, str], raw: str) -> Answer:
        return 302, {"Location": "/loop"}, b""

    def whoami(q: dict[str, str], h: dict[str, str], raw: str) -> Answer:
        # Records the headers it got, so a test sees what followed a redirect here.
        state.record("/whoami", q.get("key", ""), h)
        return 200, {}, [{"id": 1, "host": h.get("host", "")}]

    return {
        "/users": users,
        "/users_offset": users_offset,
        "/users_cursor": users_cursor,
        "/users_link": users_link,
        "/users_all": users_all,
        "/endless": endless,
        "/secure/bearer": secure("bearer"),
        "/secure/basic": secure("basic"),
        "/secure/header": secure("header"),
        "/echo_bad": echo_bad,
        "/flaky429": flaky429,
        "/flaky429_date": flaky429_date,
        "/flaky503": flaky503,
        "/always503": always503,
        "/slow": slow,
        "/html": html,
        "/html_page2": html_page2,
        "/wrapped": wrapped,
        "/drift": drift,
        "/mixed": mixed,
        "/echo": echo,
        "/events": events,
        "/scalars": scalars,
        "/empty": empty,
        "/redirect": redirect,
        "/whoami": whoami,
        "/loop": loop,
    }


def _handler(state: ApiState) -> type[BaseHTTPRequestHandler]:
    routes = make_routes(state)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            route = routes.get(parts.path)
            answer: Answer = (404, {}, {"error": "not found"})
            if route is not None:
                answer = route(query, headers, parts.query)
            status, extra, body = answer
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            if "Content-Type" not in extra:
                self.send_header("Content-Type", "application/json")
            for key, value in extra.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out hangs up before the slow answer is written: expected here.
        pass


@contextmanager
def _serving(name: str) -> Iterator[Api]:
    """A fake REST API on an ephemeral port of 127.0.0.1, until the block ends."""
    state = ApiState()
    server = _QuietServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield Api(url=f"http://127.0.0.1:{server.server_address[1]}", state=state)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def api() -> Iterator[Api]:
    """The fake REST API, on an ephemeral port of 127.0.0.1, for the whole session."""
    with _serving("fake-rest-api") as served:
        yield served


@pytest.fixture(scope="session")
def other_api() -> Iterator[Api]:
    """A second fake REST API on another port: somewhere else to be redirected to."""
    with _serving("other-rest-api") as served:
        yield served


@pytest.fixture
def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(autouse=True, params=["polars", "json"])
def page_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run every test with both page parsers: Polars straight from the bytes, and ``json``."""
    from etl_nb.connectors.http import records as http

    monkeypatch.setattr(http, "FAST_JSON", request.param == "polars")
    parser: str = request.param
    return parser
