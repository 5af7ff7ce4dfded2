"""A real ``jupyter lab`` for the browser tests: token and XSRF checks on, nothing in the home folder.

The lab runs on 127.0.0.1 with a random token (not galata's test
configuration, which turns authentication off) in temporary
``JUPYTER_CONFIG_DIR``/``JUPYTER_DATA_DIR``/``JUPYTER_RUNTIME_DIR``/``IPYTHONDIR``,
on a root folder holding a copy of the quickstart notebook and its data.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("ETL_NB_CHROMIUM", "/usr/bin/chromium"))
LAB_START_DEADLINE = 90  # seconds for jupyter lab to answer on a busy machine


@dataclass(frozen=True)
class Lab:
    """A running lab: its URL, token, root folder and the environment its runs use."""

    url: str
    token: str
    root: Path
    env: dict[str, str]
    log: Path


def _needed(what: str) -> None:
    """Fail in CI (a missing part is a broken setup), skip on a developer's machine."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing: `make setup` installs it.")
    pytest.skip(f"{what} is missing: run `make setup`.")


@pytest.fixture(scope="module")
def browser_tools() -> dict[str, str]:
    """Node, playwright-core (npm) and Debian's chromium, or a skip/fail saying which is missing."""
    node = shutil.which("node")
    if node is None:
        _needed("node")
    if not (REPO / "node_modules" / "playwright-core").is_dir():
        _needed("playwright-core (npm)")
    if not CHROMIUM.exists():
        _needed(f"chromium ({CHROMIUM})")
    return {"node": str(node), "chromium": str(CHROMIUM)}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, browser_tools: dict[str, str]) -> Iterator[Lab]:
    """``jupyter lab`` started for these tests, stopped after them."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    root.mkdir()
    shutil.copy(REPO / "notebooks" / "quickstart.ipynb", root / "quickstart.ipynb")
    shutil.copytree(REPO / "notebooks" / "data", root / "data", ignore=shutil.ignore_patterns("output"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "ETL_NB_"))}
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        folder = base / name.lower()
        folder.mkdir()
        env[name] = str(folder)
    env["ETL_NB_HOME"] = str(root)
    _quiet_settings(Path(env["JUPYTER_CONFIG_DIR"]))
    token = secrets.token_hex(24)
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        "--ServerApp.disable_check_xsrf=False",
        f"--ServerApp.root_dir={root}",
        "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = base / "lab.log"
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, token, process, log)
        yield Lab(url=url, token=token, root=root, env=env, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _quiet_settings(config_dir: Path) -> None:
    """No "get Jupyter news?" prompt over the page (and no request for news)."""
    settings = config_dir / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_up(url: str, token: str, process: subprocess.Popen[bytes], log: Path) -> None:
    request = urllib.request.Request(f"{url}/etl-nb/api/version", headers={"Authorization": f"token {token}"})
    deadline = time.monotonic() + LAB_START_DEADLINE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"jupyter lab exited at start:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"jupyter lab did not answer in time:\n{log.read_text(errors='replace')[-3000:]}")
