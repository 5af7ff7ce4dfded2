"""A notebook of ``%%etl`` cells → a plain notebook or script on the Python API.

``export_notebook(path, to="py"|"ipynb", output=None)`` writes the file;
``render_script(nb, ...)`` and ``render_notebook(nb, ...)`` are the pure
functions behind it. The output reads like code a person wrote against
DESIGN.md section 3:

- one ``p.connect / extract / transform / check / load`` call per statement,
  SQL kept as triple-quoted text with its ``{{ name }}`` parameters, which are
  bound at ``p.run(params={...})`` from the notebook's variables;
- a ``--python`` transform becomes a function named after the step whose
  arguments are the steps it reads and whose last expression is returned
  (or, when that would change its meaning, its code as a string);
- the parameters cell stays (tagged ``parameters`` in a notebook; top-level
  assignments overridden by ``argparse`` options in a script), ordinary
  Python cells stay in place (``etl_nb.current()`` becomes the pipeline),
  markdown stays (as ``#`` comments in a script), ``${VAR}`` stays
  unresolved, and ``%load_ext etl_nb`` goes;
- the notebook's cells ran each step as they went; the export runs the
  pipeline where the notebook says ``%etl run``, before a cell that reads
  step outputs, and once at the end if steps were declared after the last run.

The package, in the order the work flows: ``plan`` (cells → chunks),
``emit`` (one writer per statement kind: add a new kind there), ``rewrite``
(the notebook's own Python, made fit for a script), ``layout`` (the small
formatter) and ``script`` (assembly and the atomic write). The way back, an
exported notebook read as a pipeline, is ``etl_nb.notebook.api_reader``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from etl_nb.errors import SpecError
from etl_nb.notebook.export.layout import LINE_LENGTH
from etl_nb.notebook.export.plan import Planner
from etl_nb.notebook.export.script import join_script, script_imports, write_atomically
from etl_nb.notebook.reader import pipeline_name

__all__ = [
    "LINE_LENGTH",
    "ExportFormat",
    "default_output",
    "export_notebook",
    "render_notebook",
    "render_script",
]

ExportFormat = Literal["py", "ipynb"]


def default_output(path: str | os.PathLike[str], to: ExportFormat) -> Path:
    """Where ``export_notebook`` writes when no output is given: beside the notebook.

    ``revenue.ipynb`` → ``revenue.py`` or ``revenue_plain.ipynb``.
    """
    source = Path(path)
    return source.with_name(f"{source.stem}.py" if to == "py" else f"{source.stem}_plain.ipynb")


def export_notebook(
    path: str | os.PathLike[str],
    to: ExportFormat = "py",
    output: str | os.PathLike[str] | None = None,
) -> Path:
    """Export the notebook at ``path`` as a script (``to="py"``) or plain notebook; return the file written.

    ``output`` defaults to ``default_output(path, to)``; an existing file there
    is replaced. Raises ``SpecError`` (nothing written) for a missing or
    unreadable notebook, a ``%etl`` cell that does not parse (naming the cell),
    a pipeline whose graph does not build, or an unusable output path.
    """
    import nbformat  # on first use: the JSON-schema validation it loads is slow to import

    if to not in ("py", "ipynb"):
        raise SpecError(f"Unknown export format '{to}': use py (a script) or ipynb (a plain notebook).")
    source = Path(path)
    if not source.is_file():
        if source.is_dir():
            raise SpecError(f"'{source}' is a folder; give the notebook file (an .ipynb).")
        raise SpecError(f"Notebook '{source}' does not exist. Check the path.")
    target = Path(output) if output is not None else default_output(source, to)
    _check_output(source, target, to)
    try:
        read: Callable[..., Any] = nbformat.read
        nb = read(source, as_version=4)
    except (OSError, ValueError, nbformat.reader.NotJSONError) as exc:
        raise SpecError(f"Cannot read notebook '{source}': {exc}. Is it an .ipynb file?") from None
    name = pipeline_name(source)
    base_dir = Path(os.path.relpath(source.resolve().parent, target.resolve().parent)).as_posix()
    if to == "py":
        text = render_script(nb, name=name, source_name=source.name, base_dir=base_dir)
    else:
        writes: Callable[..., str] = nbformat.writes
        text = writes(render_notebook(nb, name=name, base_dir=base_dir))
    write_atomically(target, text)
    return target


def render_script(nb: Any, *, name: str, source_name: str = "notebook.ipynb", base_dir: str = ".") -> str:
    """The script for notebook ``nb`` (an ``nbformat`` node or dict) as text.

    ``name`` is the pipeline's name; ``base_dir`` is the notebook's folder
    relative to the script's (paths in the pipeline resolve against it).
    """
    plan = Planner(nb, name, script=True, base_dir=base_dir).plan()
    plan.imports = script_imports(plan)
    return join_script(plan, source_name)


def render_notebook(nb: Any, *, name: str, base_dir: str = ".") -> Any:
    """The plain notebook for notebook ``nb`` as an ``nbformat`` node (no outputs).

    ``base_dir`` is the source notebook's folder relative to the new one's.
    """
    import nbformat  # on first use, as in export_notebook

    v4: Any = nbformat.v4  # untyped
    plan = Planner(nb, name, script=False, base_dir=base_dir).plan()
    out = v4.new_notebook()
    metadata = nb.get("metadata", {})
    out.metadata = {k: metadata[k] for k in ("kernelspec", "language_info") if k in metadata}
    for number, chunk in enumerate(plan.chunks):
        if chunk.kind == "markdown":
            cell = v4.new_markdown_cell(chunk.text)
        else:
            cell = v4.new_code_cell(chunk.text)
            if chunk.kind == "parameters":
                cell.metadata["tags"] = ["parameters"]
        cell["id"] = chunk.cell_id or f"etl-export-{number}"
        out.cells.append(cell)
    return out


def _check_output(source: Path, target: Path, to: ExportFormat) -> None:
    if target.is_dir():
        raise SpecError(
            f"Output '{target}' is a folder; give a file name, "
            f"e.g. -o {target / default_output(source, to).name}."
        )
    if target.resolve() == source.resolve():
        raise SpecError(f"Output '{target}' is the notebook itself; give another file name with -o.")
    wanted = ".py" if to == "py" else ".ipynb"
    if target.suffix in (".py", ".ipynb") and target.suffix != wanted:
        raise SpecError(
            f"Output '{target}' does not end in {wanted} but --to is {to}; rename it or change --to."
        )
    if not target.parent.resolve().is_dir():
        raise SpecError(f"Folder '{target.parent}' does not exist; create it first.")
