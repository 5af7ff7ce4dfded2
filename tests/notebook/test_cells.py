"""One reading of a ``%etl`` line: the kernel, the reader and the export expand it the same way."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest
from nbtools import Notebook, write_notebook

from etl_nb.notebook.cells import expand
from etl_nb.notebook.export import export_notebook
from etl_nb.notebook.reader import read_notebook
from etl_nb.spec import LoadStep, parse_cell

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


# A parameter value that reads like options: before, `--path {out}` became a replace load elsewhere.
OPTIONS_VALUE = "x.csv --mode replace --path ../../elsewhere.parquet"


def test_a_field_is_one_argument_in_kernel_reader_and_export_whatever_it_holds(
    nb: Notebook, workdir: Path
) -> None:
    shutil.copytree(workdir / "data", workdir / "my data")
    parameters = (f'folder = "my data"\nout = {OPTIONS_VALUE!r}', ["parameters"])
    cells: list[str | tuple[str, list[str]]] = [
        parameters,
        "%etl connect lake {folder}",
        "%%etl extract orders --from lake\npath: orders.csv",
        "%etl load orders --to lake --path out/{out}",
    ]
    notebook = write_notebook(workdir / "values.ipynb", cells)
    default_mode = parse_cell("load orders --to lake --path out/x.csv").mode  # type: ignore[union-attr]

    for cell in cells:
        nb.ok(cell[0] if isinstance(cell, tuple) else cell)
    read = read_notebook(notebook)
    plain = read_notebook(export_notebook(notebook, to="ipynb"))
    assert read.problems == plain.problems == []
    for spec in (nb.pipeline().spec, read.spec, plain.spec):
        assert spec.connections["lake"].url == "my data"
        (load,) = [s for s in spec.steps if isinstance(s, LoadStep)]
        assert (load.path, load.mode) == (f"out/{OPTIONS_VALUE}", default_mode)
    assert not (workdir / "elsewhere.parquet").exists()
    assert not (workdir.parent / "elsewhere.parquet").exists()


@pytest.mark.parametrize(
    ("line", "word"),
    [
        ("load t --to lake --path {v}", 'it\'s a "b" \\ c d'),
        ("load t --to lake --path 'pre {v} post'", 'pre it\'s a "b" \\ c d post'),
        ('load t --to lake --path "pre {v} post"', 'pre it\'s a "b" \\ c d post'),
        ("load t --to lake --path pre-{v}-post", 'pre-it\'s a "b" \\ c d-post'),
    ],
)
def test_a_value_with_quotes_and_spaces_stays_the_word_it_was_written_in(line: str, word: str) -> None:
    expanded = expand(line, lambda name: 'it\'s a "b" \\ c d')
    assert shlex.split(expanded)[-1] == word
    assert len(shlex.split(expanded)) == 6


def test_an_empty_value_is_still_an_argument() -> None:
    expanded = expand("run --only {v} --from x", lambda name: "")
    assert shlex.split(expanded) == ["run", "--only", "", "--from", "x"]
