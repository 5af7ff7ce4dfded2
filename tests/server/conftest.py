"""A real Jupyter server with the etl_nb extension, through pytest-jupyter's ``jp_fetch``.

The plugin's fixtures (and its autouse event loop) are imported here, so
they apply to these tests only, not to the rest of the suite.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403
from tornado.httpclient import HTTPResponse
from traitlets.config import Config

REPO = Path(__file__).resolve().parents[2]
Fetch = Callable[..., Awaitable[HTTPResponse]]


@pytest.fixture
def jp_server_config(jp_root_dir: Path) -> Config:
    """The server with our extension on, its project folder in the server's root."""
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"etl_nb.server": True}},
            "EtlNbApp": {
                "home": str(jp_root_dir),
                "store_url": f"sqlite:///{jp_root_dir / '.etl_nb' / 'etl_nb.db'}",
            },
        }
    )


@pytest.fixture
def workspace(jp_root_dir: Path) -> Path:
    """The server's root holding the quickstart notebook and its data, as a user's project would."""
    shutil.copy(REPO / "notebooks" / "quickstart.ipynb", jp_root_dir / "quickstart.ipynb")
    data = REPO / "notebooks" / "data"
    shutil.copytree(data, jp_root_dir / "data", ignore=shutil.ignore_patterns("output"))
    return jp_root_dir


@pytest.fixture
def api(jp_fetch: Fetch) -> Callable[..., Awaitable[tuple[int, Any]]]:
    """Call ``/etl-nb/api/...``: ``await api("runs", method="POST", body=...)`` -> (status, JSON)."""

    async def call(*parts: str, **kwargs: Any) -> tuple[int, Any]:
        if isinstance(kwargs.get("body"), dict):
            kwargs["body"] = json.dumps(kwargs["body"])
        response = await jp_fetch("etl-nb", "api", *parts, raise_error=False, **kwargs)
        return response.code, json.loads(response.body or b"null")

    return call
