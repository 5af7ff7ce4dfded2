"""One reading of a ``%etl`` line: the kernel, the reader and the export expand it the same way."""

from __future__ import annotations

from pathlib import Path

import pytest
from nbtools import Notebook, write_notebook

from etl_nb.notebook.export import export_notebook
from etl_nb.notebook.reader import read_notebook

PARAMETERS = ('folder = "data"\nsub: str = "in"\nlow, high = 1, 9', ["parameters"])
LINES = {
    "lake": ("%etl connect lake {folder}/$sub", "data/in"),
    "pair": ("%etl connect pair ./{low}-{high}", "./1-9"),
    "shop": (
        "%etl connect shop postgresql://me:${PGPASSWORD}@localhost/shop",
        "postgresql://me:${PGPASSWORD}@localhost/shop",
    ),
    "escapes": ("%etl connect escapes ./a{{b}}$$c", "./a{b}$c"),
}


@pytest.mark.parametrize("name", list(LINES))
def test_kernel_reader_and_export_expand_a_line_alike(name: str, nb: Notebook, workdir: Path) -> None:
    line, url = LINES[name]
    notebook = write_notebook(workdir / "lines.ipynb", [PARAMETERS, line])

    nb.ok(PARAMETERS[0])
    nb.ok(line)
    assert nb.pipeline().spec.connections[name].url == url

    read = read_notebook(notebook)
    assert read.problems == []
    assert read.spec.connections[name].url == url

    plain = read_notebook(export_notebook(notebook, to="ipynb"))
    assert plain.problems == []
    assert plain.spec.connections[name].url == url


def test_secret_reference_is_never_expanded_even_when_a_variable_has_its_name(
    nb: Notebook, workdir: Path
) -> None:
    cells = [
        ('PGPASSWORD = "leaked"', ["parameters"]),
        "%etl connect shop postgresql://me:${PGPASSWORD}@h/db",
    ]
    notebook = write_notebook(workdir / "secret.ipynb", cells)
    for source in cells:
        nb.ok(source[0] if isinstance(source, tuple) else source)

    assert nb.pipeline().spec.connections["shop"].url == "postgresql://me:${PGPASSWORD}@h/db"
    assert read_notebook(notebook).spec.connections["shop"].url == "postgresql://me:${PGPASSWORD}@h/db"
    script = export_notebook(notebook, to="py").read_text()
    assert 'p.connect("shop", "postgresql://me:${PGPASSWORD}@h/db")' in script


def test_a_line_the_kernel_cannot_expand_runs_as_written_and_the_reader_names_the_field(
    nb: Notebook, workdir: Path
) -> None:
    line = "%etl connect lake ./{missing}"
    nb.ok(line)
    assert nb.pipeline().spec.connections["lake"].url == "./{missing}"

    read = read_notebook(write_notebook(workdir / "missing.ipynb", [line]))
    assert [p.message for p in read.problems] == [
        "'%etl connect lake ./{missing}' uses {missing}, which the reader cannot know without running the "
        "notebook. Use a literal, or a name assigned a literal in the parameters cell."
    ]


def test_a_line_inside_a_function_expands_the_function_s_locals(nb: Notebook) -> None:
    nb.ok(
        "def declare():\n    where = 'data'\n    get_ipython().run_line_magic('etl', 'connect lake {where}')"
    )
    nb.ok("declare()")
    assert nb.pipeline().spec.connections["lake"].url == "data"
