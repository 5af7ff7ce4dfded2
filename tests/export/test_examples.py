"""Every example notebook, exported both ways, writes what the notebook itself writes.

For each notebook in ``notebooks/``: the source notebook runs under
papermill with an injected parameter, the exported notebook runs under
papermill with the same parameter, and the exported script runs with plain
``python`` and the parameter as an option. The files the three runs write
must be the same (Parquet compared as tables). The generated code must match
the golden files in ``golden/`` (``ETL_NB_UPDATE_GOLDEN=1`` rewrites them),
pass ``ruff``, and read back into the same steps and edges.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import polars as pl
import pytest
from exporttools import EXAMPLES, GOLDEN, REPO, data_files, papermill_run, python_run, ruff

from etl_nb.notebook.export import export_notebook
from etl_nb.notebook.reader import read_notebook

# The parameter each run injects: a value other than the default, so a run that ignored it would show.
INJECTED: dict[str, tuple[str, Any]] = {"quickstart": ("start_date", "2026-01-10")}

examples = pytest.mark.parametrize("example", EXAMPLES, ids=[e.stem for e in EXAMPLES])


def _injected(notebook: Path) -> tuple[str, Any] | None:
    if notebook.stem in INJECTED:
        return INJECTED[notebook.stem]
    read = read_notebook(notebook)
    # An example added later: inject its first parameter with its own default.
    return next(iter(read.parameters.items()), None)


def _loads_into_a_database(notebook: Path) -> bool:
    read = read_notebook(notebook)
    connections = read.spec.connections
    loads = [s for s in read.spec.steps if s.verb == "load"]
    return any(connections[s.to].type != "files" for s in loads) or len(loads) < sum(
        1 for c in read.cells if c.line.startswith("load ")
    )


def _option(name: str, value: Any) -> list[str]:
    if isinstance(value, bool):
        return [f"--{'' if value else 'no-'}{name.replace('_', '-')}"]
    return [f"--{name.replace('_', '-')}", str(value)]


def _assert_same_files(expected: Path, actual: Path, what: str) -> None:
    before, after = data_files(expected), data_files(actual)
    assert sorted(after) == sorted(before), f"{what} wrote other files"
    for relative, digest in before.items():
        if digest == after[relative]:
            continue
        if relative.endswith(".parquet"):
            left, right = pl.read_parquet(expected / relative), pl.read_parquet(actual / relative)
            assert left.equals(right), f"{what}: {relative} differs:\n{left}\n{right}"
        else:
            assert (expected / relative).read_text() == (actual / relative).read_text(), f"{what}: {relative}"


# Examples that load into a database need a database per run: tests/examples compares those.
on_files = pytest.mark.parametrize(
    "example",
    [e for e in EXAMPLES if not _loads_into_a_database(e)],
    ids=[e.stem for e in EXAMPLES if not _loads_into_a_database(e)],
)


@on_files
def test_exported_notebook_and_script_write_what_the_notebook_writes(
    example: Path, copy_examples: Callable[[str], Path]
) -> None:
    injected = _injected(example)
    params = dict([injected]) if injected else {}
    source_dir, plain_dir = copy_examples("source"), copy_examples("plain")
    script_dir = copy_examples("script")
    pristine = data_files(source_dir)

    papermill_run(source_dir / example.name, params)
    plain = export_notebook(plain_dir / example.name, to="ipynb")
    papermill_run(plain, params)
    script = export_notebook(script_dir / example.name, to="py")
    options = _option(*injected) if injected else []
    # From another folder: relative paths still resolve against the script's folder, as for the notebook.
    done = python_run(script, *options, cwd=script_dir.parent)
    assert done.returncode == 0, done.stderr

    written = {k for k, v in data_files(source_dir).items() if pristine.get(k) != v}
    assert written, f"{example.name} wrote nothing: nothing to compare"
    _assert_same_files(source_dir, plain_dir, "the exported notebook")
    _assert_same_files(source_dir, script_dir, "the exported script")
    assert "success" in done.stdout  # the script printed its run


def test_the_script_takes_the_parameter_from_the_command_line(copy_examples: Callable[[str], Path]) -> None:
    folder = copy_examples("cli")
    script = export_notebook(folder / "quickstart.ipynb", to="py")
    output = folder / "data" / "output" / "revenue.parquet"

    assert python_run(script, cwd=folder).returncode == 0
    by_default = pl.read_parquet(output)
    done = python_run(script, "--start-date", "2026-01-10", cwd=folder)
    assert done.returncode == 0, done.stderr
    later = pl.read_parquet(output)

    assert later["name"].to_list() == ["Grace", "Linus", "Barbara"]
    assert by_default.height > later.height
    helped = python_run(script, "--help", cwd=folder)
    assert "--start-date START_DATE" in helped.stdout
    assert "--data-dir DATA_DIR" in helped.stdout


@examples
@pytest.mark.parametrize("to", ["py", "ipynb"])
def test_generated_code_matches_the_golden_file(example: Path, to: str, tmp_path: Path) -> None:
    written = export_notebook(_beside(example, tmp_path), to=to)  # type: ignore[arg-type]
    # A notebook is kept as its cells in text (a real .ipynb here would be collected by nbval).
    text = written.read_text() if to == "py" else _cells_as_text(written)
    golden = GOLDEN / (f"{example.stem}.py" if to == "py" else f"{example.stem}.ipynb.txt")
    if os.environ.get("ETL_NB_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert golden.exists(), f"no golden file {golden.name}: run with ETL_NB_UPDATE_GOLDEN=1 and review it"
    assert text == golden.read_text(), (
        f"the export of {example.name} changed: review the difference, then ETL_NB_UPDATE_GOLDEN=1"
    )


def _beside(example: Path, folder: Path) -> Path:
    """A copy of the example notebook in ``folder``, so its export is written beside it there."""
    copy = folder / example.name
    copy.write_bytes(example.read_bytes())
    return copy


def _cells_as_text(path: Path) -> str:
    """The notebook's cells in the percent format: ``# %% [markdown]`` or ``# %%`` with its tags."""
    nb = nbformat.read(path, as_version=4)
    parts = [f"# notebook metadata: {sorted(nb.metadata)}"]
    for cell in nb.cells:
        tags = cell.metadata.get("tags")
        header = "# %% [markdown]" if cell.cell_type == "markdown" else "# %%"
        header += f" tags={tags}" if tags else ""
        body = (
            cell.source
            if cell.cell_type == "code"
            else "\n".join(f"# {line}".rstrip() for line in cell.source.split("\n"))
        )
        parts.append(f"{header} id={cell.id}\n{body}")
    return "\n\n".join(parts) + "\n"


@examples
@pytest.mark.parametrize("to", ["py", "ipynb"])
def test_generated_code_passes_ruff(example: Path, to: str, tmp_path: Path) -> None:
    written = export_notebook(_beside(example, tmp_path), to=to)  # type: ignore[arg-type]
    config = ["--config", str(REPO / "pyproject.toml")]
    checked = subprocess.run(
        [str(ruff()), "check", *config, str(written)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The export's own code is formatted; the notebook's own cells are kept exactly as written.
    formatted = subprocess.run(
        [str(ruff()), "format", "--diff", *config, str(written)], capture_output=True, text=True, check=False
    )
    changed = [
        line[1:]
        for line in formatted.stdout.splitlines()
        if line.startswith("-") and not line.startswith("---") and line[1:].strip()
    ]
    own = "\n".join(c.source for c in nbformat.read(example, as_version=4).cells if c.cell_type == "code")
    assert [line for line in changed if line not in own] == [], formatted.stdout


@examples
def test_exported_notebook_reads_back_as_the_same_pipeline(example: Path, tmp_path: Path) -> None:
    plain = export_notebook(example, to="ipynb", output=tmp_path / f"{example.stem}.ipynb")
    source, exported = read_notebook(example), read_notebook(plain)

    # What the reader could not follow in the notebook (if anything), it cannot follow in the export either.
    assert len(exported.problems) == len(source.problems)
    assert exported.edges == source.edges
    assert _steps(exported) == _steps(source)
    assert _connections(exported) == _connections(source)
    assert exported.parameters == source.parameters
    cells = nbformat.read(plain, as_version=4).cells
    assert [c.metadata.get("tags") for c in cells if "parameters" in c.metadata.get("tags", [])] == [
        ["parameters"]
    ]
    assert not any("%etl" in c.source or "%load_ext" in c.source for c in cells if c.cell_type == "code")


def _steps(read: Any) -> list[dict[str, Any]]:
    return [s.model_dump(exclude={"cell"}) for s in read.spec.steps]


def _connections(read: Any) -> dict[str, Any]:
    return {k: v.model_dump(exclude={"cell"}) for k, v in read.spec.connections.items()}
