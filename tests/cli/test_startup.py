"""Start-up stays light: `import etl_nb` and `etl-nb --help` load no engine library.

DuckDB, Polars, pyarrow, SQLAlchemy, papermill and IPython cost about half a
second to import; a command that only prints help, or a script that only
needs the errors, must not pay it (issue: fast where users wait).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("duckdb", "polars", "pyarrow", "sqlalchemy", "papermill", "IPython", "tenacity")


def _imported_after(code: str) -> list[str]:
    script = (
        "import sys\n"
        f"try:\n    {code}\nexcept SystemExit:\n    pass\n"
        f"print('loaded:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    marked = [line for line in done.stdout.splitlines() if line.startswith("loaded:")]  # not the help
    assert len(marked) == 1, done.stdout
    return [m for m in marked[0].removeprefix("loaded:").split(",") if m]


@pytest.mark.parametrize(
    "code",
    [
        "import etl_nb",
        "from etl_nb import EtlError, RunResult, RetryPolicy",
        "import etl_nb.cli as cli; cli.main(['--help'])",
        "import etl_nb.cli as cli; cli.main(['schedule', '--help'])",
    ],
)
def test_start_up_imports_no_engine_library(code: str) -> None:
    assert _imported_after(code) == []


def test_pipeline_is_still_importable_from_the_package() -> None:
    assert "duckdb" in _imported_after("from etl_nb import Pipeline; Pipeline('p')")


@pytest.mark.parametrize("command", [["runs"], ["runs", "--json"], ["schedule", "list"]])
def test_listing_runs_and_schedules_needs_the_store_but_no_engine(command: list[str]) -> None:
    loaded = _imported_after(f"import etl_nb.cli as cli; cli.main({command!r})")
    assert [m for m in loaded if m != "sqlalchemy"] == []  # the store is SQLAlchemy; the engine is not needed


def test_load_ext_registers_the_magics_without_the_engine(tmp_path: Path) -> None:
    """`%load_ext etl_nb` in a shell is light; the first `%%etl` cell brings the engine and works."""
    engine = ("duckdb", "polars", "pyarrow", "sqlalchemy")
    script = (
        "import io, os, sys\n"
        "from contextlib import redirect_stdout\n"
        f"os.environ['IPYTHONDIR'] = {str(tmp_path / 'ipython')!r}\n"
        f"os.environ['ETL_NB_STORE_URL'] = 'sqlite:///{tmp_path / 'runs.db'}'\n"
        f"os.chdir({str(tmp_path)!r})\n"
        "from IPython.testing.globalipapp import start_ipython\n"
        "shell = start_ipython()\n"
        "with redirect_stdout(io.StringIO()):\n"
        "    shell.run_line_magic('load_ext', 'etl_nb')\n"
        f"print('after load:' + ','.join(m for m in {engine!r} if m in sys.modules))\n"
        "print('magic:' + str('etl' in shell.magics_manager.magics['cell']))\n"
        "with redirect_stdout(io.StringIO()):\n"
        "    result = shell.run_cell('%%etl transform answer\\nSELECT 42 AS answer')\n"
        "print('cell:' + str(result.success))\n"
        "import etl_nb\n"
        "print('rows:' + str(etl_nb.current().table('answer').to_dicts()))\n"
        "print('base_dir:' + str(etl_nb.current().base_dir))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    lines = dict(line.split(":", 1) for line in done.stdout.splitlines() if ":" in line)
    assert lines["after load"] == ""
    assert lines["magic"] == "True"
    assert lines["cell"] == "True"
    assert lines["rows"] == "[{'answer': 42}]"
    assert Path(lines["base_dir"]) == tmp_path.resolve()


@pytest.mark.parametrize(
    "code",
    [
        # `etl-nb run` reaches these to start its kernel early: before the store, reader and papermill.
        "import etl_nb.runs.kernel",
        "import etl_nb.store, etl_nb.runs",
        "from etl_nb.project import default_store_url; default_store_url()",
    ],
)
def test_what_etl_nb_run_needs_before_its_kernel_starts_imports_no_engine_library(code: str) -> None:
    assert _imported_after(code) == []


def test_the_store_and_runs_packages_still_give_their_names() -> None:
    loaded = _imported_after("from etl_nb.store import RunStore; from etl_nb.runs import submit_run")
    assert "sqlalchemy" in loaded
    with pytest.raises(ImportError):
        exec("from etl_nb.store import no_such_name")


def test_etl_nb_reads_notebooks_without_jsonschema_grammars() -> None:
    """rfc3987_syntax (0.4 s of grammars, for jsonschema's "iri" format) stays out; notebooks validate."""
    script = (
        "import sys\n"
        "import etl_nb.cli as cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "import nbformat\n"
        "nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('x = 1')])\n"
        "nbformat.validate(nb)\n"
        "print('grammars:', sys.modules.get('rfc3987_syntax') is not None)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "grammars: False"
