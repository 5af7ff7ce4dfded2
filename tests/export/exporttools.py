"""Helpers for the export tests: run notebooks and scripts, list the files a run wrote."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
GOLDEN = Path(__file__).resolve().parent / "golden"
EXAMPLES = sorted(NOTEBOOKS.glob("*.ipynb"))
IGNORED = (".etl_nb", "__pycache__", ".ipynb_checkpoints")


def papermill_run(notebook: Path, parameters: dict[str, Any]) -> None:
    """Run ``notebook`` as ``etl-nb run`` does: papermill, cwd = the notebook's folder."""
    import papermill

    papermill.execute_notebook(
        str(notebook),
        str(notebook.with_name(f"{notebook.stem}.executed.ipynb")),
        parameters=parameters,
        cwd=str(notebook.parent),
        kernel_name="python3",
        progress_bar=False,
    )


def python_run(script: Path, *options: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run an exported script with plain Python, from ``cwd``."""
    return subprocess.run(
        [sys.executable, str(script), *options],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=180,
    )


def etl_nb_command(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed ``etl-nb`` command, as a user runs it."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "etl-nb"), *args],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=180,
    )


def data_files(folder: Path) -> dict[str, str]:
    """Every file a run may write (notebooks and scripts left out), by relative path → content hash."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or any(part in IGNORED for part in relative.parts):
            continue
        if path.suffix in (".ipynb", ".py"):
            continue
        found[relative.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def write_notebook(path: Path, cells: list[str | tuple[str, list[str]]]) -> Path:
    """A notebook of code cells (``(source, tags)`` for tagged ones; ``md:`` starts a markdown cell)."""
    nb = nbformat.v4.new_notebook()
    for number, cell in enumerate(cells):
        source, tags = cell if isinstance(cell, tuple) else (cell, [])
        if source.startswith("md:"):
            node = nbformat.v4.new_markdown_cell(source[3:].strip())
        else:
            node = nbformat.v4.new_code_cell(source)
            if tags:
                node.metadata["tags"] = tags
        node["id"] = f"cell-{number}"
        nb.cells.append(node)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def ruff() -> Path:
    """The ruff of this environment (a dev dependency)."""
    found = Path(sys.executable).parent / "ruff"
    if not found.exists():
        pytest.skip("ruff is not installed in this environment (pip install -e '.[dev]')")
    return found
