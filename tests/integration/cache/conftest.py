"""A REST API on 127.0.0.1 that counts the requests it answers, and a folder of files.

Each test gets its own server, so a count is that test's alone: a rerun that
reuses an extract must leave the count where it was.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

ORDERS = [{"id": i, "customer": f"c{i % 3}", "amount": 10 * i} for i in range(1, 8)]
TOKEN = "tok-9f8e7d6c5b4a-resolved-secret"


@dataclass
class CountingApi:
    """The server's base URL and the requests it answered, by path."""

    url: str
    token: str = TOKEN
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, path: str = "/orders") -> int:
        """How many requests to ``path`` the server answered."""
        with self.lock:
            return sum(1 for p in self.requests if p == path)


@pytest.fixture
def api() -> Iterator[CountingApi]:
    """``GET /orders?page=N&per_page=M``: pages of ORDERS; a bearer token is required."""
    state = CountingApi(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            with state.lock:
                state.requests.append(parts.path)
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._answer(401, {"error": "unauthorized"})
                return
            page, size = int(query.get("page", 1)), int(query.get("per_page", 3))
            self._answer(200, {"data": ORDERS[(page - 1) * size : page * size]})

        def _answer(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def lake(etl_home: Path) -> Path:
    """``data/customers.csv`` in the project folder, beside which pipelines are declared."""
    data = etl_home / "data"
    data.mkdir()
    (data / "customers.csv").write_text("customer,country\nc0,FR\nc1,DE\nc2,IT\n")
    return data


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    """The API token, set as ``${API_TOKEN}`` for the connection to resolve."""
    monkeypatch.setenv("API_TOKEN", TOKEN)
    return TOKEN
