"""Prose and strings in an export stay prose and strings: no line break in a notebook turns into code."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest
from exporttools import REPO, ruff, write_notebook

from etl_nb.notebook.export import export_notebook
from etl_nb.notebook.reader import read_notebook

# Every character some reader (Python, IPython, an editor) takes as the end of a line.
BREAKS = ["\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
PAYLOAD = "import os; os.system('echo prose ran')"


def _calls_and_imports(tree: ast.Module) -> list[str]:
    found = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    found += [
        ast.unparse(n)
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "system"
    ]
    return [f for f in found if "os" in f.split()]


def test_markdown_with_any_line_break_exports_as_comments_only(tmp_path: Path) -> None:
    cells: list[str | tuple[str, list[str]]] = [f"md:Notes{b}{PAYLOAD}" for b in BREAKS]
    notebook = write_notebook(tmp_path / "notes.ipynb", [*cells, "%load_ext etl_nb", "%etl connect lake ."])

    script = export_notebook(notebook, to="py").read_text()

    assert _calls_and_imports(ast.parse(script)) == []
    assert all(b not in script for b in BREAKS)
    assert script.count("# Notes\n# import os; os.system('echo prose ran')") == len(BREAKS)


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    """A notebook whose magics, SQL, file name and parameter hide code behind line breaks."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "t.csv").write_text("a\n1\n")
    cells: list[str | tuple[str, list[str]]] = [
        "%load_ext etl_nb",
        ('title = \'x"""\\rimport os; os.system(1)  #\'', ["parameters"]),
        "%%bash\necho hi\r" + PAYLOAD,
        "%etl connect lake data",
        "%%etl extract t --from lake\npath: t.csv",
        "%%etl transform u\nSELECT a -- a note\u2028" + PAYLOAD + "\x0c\nFROM t",
    ]
    return write_notebook(tmp_path / 'notes"""\rimport os.ipynb', cells)


def test_a_file_name_a_parameter_a_cell_magic_and_sql_stay_text(hostile: Path) -> None:
    written = export_notebook(hostile, to="py", output=hostile.with_name("out.py"))

    script = written.read_text()
    assert _calls_and_imports(ast.parse(script)) == []
    assert all(b not in script for b in BREAKS)
    config = ["--config", str(REPO / "pyproject.toml")]
    for command in (["check", *config, str(written)], ["format", "--check", *config, str(written)]):
        done = subprocess.run([str(ruff()), *command], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


def test_sql_with_unusual_line_breaks_exports_exactly(hostile: Path) -> None:
    exported = export_notebook(hostile, to="ipynb", output=hostile.with_name("out.ipynb"))
    (transform,) = [s for s in read_notebook(exported).spec.steps if s.verb == "transform"]
    (original,) = [s for s in read_notebook(hostile).spec.steps if s.verb == "transform"]
    assert transform.sql == original.sql  # type: ignore[union-attr]
    assert "\u2028" in (transform.sql or "")  # type: ignore[union-attr]
