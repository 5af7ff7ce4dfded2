"""`etl-nb run --cache` and `--resume` on real notebooks, executed by papermill."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.integration.cache.conftest import CountingApi

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def project(etl_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project folder with the example notebook and its data; Jupyter's folders inside it."""
    shutil.copytree(REPO / "notebooks" / "data", etl_home / "data", ignore=shutil.ignore_patterns("output"))
    shutil.copy(REPO / "notebooks" / "quickstart.ipynb", etl_home / "quickstart.ipynb")
    monkeypatch.delenv("ETL_NB_STORE_URL", raising=False)
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        folder = etl_home / ".jupyter" / name.lower()
        folder.mkdir(parents=True)
        monkeypatch.setenv(name, str(folder))
    return etl_home


def _etl_nb(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "etl-nb"), *args]
    return subprocess.run(
        command, check=False, cwd=cwd, capture_output=True, text=True, env=os.environ.copy(), timeout=180
    )


def _steps(project: Path, run_id: str) -> dict[str, dict[str, object]]:
    shown = json.loads(_etl_nb("show", run_id, "--json", cwd=project).stdout)
    return {s["step"]: s for s in shown["steps"]}


def _last_run(project: Path) -> str:
    return str(json.loads(_etl_nb("runs", "--json", "--limit", "1", cwd=project).stdout)[0]["id"])


def test_the_example_notebook_run_twice_with_cache_reuses_every_step(project: Path) -> None:
    assert _etl_nb("run", "quickstart.ipynb", "--cache", cwd=project).returncode == 0
    first = _last_run(project)

    second_run = _etl_nb("run", "quickstart.ipynb", "--cache", cwd=project)

    assert second_run.returncode == 0, second_run.stderr
    second = _last_run(project)
    steps = _steps(project, second)
    assert steps
    for name, step in steps.items():
        detail = step["detail"]
        assert isinstance(detail, dict), name
        assert detail["decision"] in ("reused", "skipped"), (name, detail)
        assert first in str(detail["reason"])
    shown = _etl_nb("show", second, cwd=project).stdout
    assert "reused (unchanged since run" in shown


def _api_notebook(path: Path, api: CountingApi, totals: str) -> Path:
    nb = nbformat.v4.new_notebook()
    cells = [
        "%load_ext etl_nb",
        f"%%etl connect api\nurl: {api.url}\nauth: {{type: bearer, token: '${{API_TOKEN}}'}}",
        "%etl connect lake ./data",
        "%%etl extract orders --from api\npath: /orders\nrecords: data\n"
        "paginate: {type: page, param: page, size_param: per_page, size: 3}",
        f"%%etl transform totals\n{totals}",
        "%etl load totals --to lake --path out/totals.parquet --mode replace",
    ]
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_a_failed_notebook_run_resumed_after_a_fix_makes_no_request_and_loads_once(
    project: Path, api: CountingApi, token: str
) -> None:
    notebook = _api_notebook(project / "api.ipynb", api, "SELECT customer, sum(amountt) AS total FROM orders")
    assert _etl_nb("run", str(notebook), cwd=project).returncode == 1
    failed = _last_run(project)
    requests = api.count()
    assert requests > 0
    _api_notebook(notebook, api, "SELECT customer, sum(amount) AS total FROM orders GROUP BY ALL")

    resumed = _etl_nb("run", str(notebook), "--resume", failed[:12], cwd=project)

    assert resumed.returncode == 0, resumed.stderr
    assert api.count() == requests
    run_id = _last_run(project)
    steps = _steps(project, run_id)
    assert steps["orders"]["detail"] == {"decision": "reused", "reason": f"kept by run {failed}, resumed"}
    assert steps["load:totals:lake:out/totals.parquet"]["rows"] == 3
    assert json.loads(_etl_nb("show", run_id, "--json", cwd=project).stdout)["resumed_from"] == failed


def test_resuming_a_successful_run_is_a_one_line_error(project: Path) -> None:
    assert _etl_nb("run", "quickstart.ipynb", cwd=project).returncode == 0
    good = _last_run(project)

    refused = _etl_nb("run", "quickstart.ipynb", "--resume", good, cwd=project)

    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"etl-nb: error: Run {good} succeeded, so there is nothing to resume: run the pipeline again instead."
    )


def test_an_exported_script_keeps_the_cache_ttl(project: Path, api: CountingApi) -> None:
    notebook = _api_notebook(project / "api.ipynb", api, "SELECT * FROM orders")
    nb = nbformat.read(notebook, as_version=4)
    nb.cells[3].source = nb.cells[3].source.replace("--from api", "--from api --cache-ttl 30m")
    nbformat.write(nb, notebook)

    assert _etl_nb("export", str(notebook), "--to", "py", "-o", "api.py", cwd=project).returncode == 0

    assert "cache_ttl='30m'" in (project / "api.py").read_text().replace('"', "'")
