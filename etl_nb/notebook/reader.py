"""An ``.ipynb`` file → its pipeline, without a kernel.

``read_notebook(path)`` finds every ``%%etl`` cell and every ``%etl`` line in
the notebook's code cells, parses each with the same ``parse_cell`` the
magics use, and returns a ``NotebookPipeline``:

- ``spec``: a ``PipelineSpec`` named after the file stem, with the steps in
  notebook order and the parameters cell's literal defaults;
- ``parameters`` / ``parameter_names``: the cell tagged ``parameters``
  (papermill's convention), read with ``ast``: literal values become
  defaults, every assigned name is listed;
- ``cells``: each ``%etl`` statement found, with its cell index and parse result;
- ``problems``: what could not be used, each with its cell (in cell order). A bad cell never
  hides the others: its statement is left out and the rest still form a
  pipeline whose graph builds.

Cell numbers: ``index`` and ``Problem.cell`` are positions in ``nb.cells``
(0-based, markdown cells included); messages for people say ``cell N`` with
N = index + 1. Statements carry the same 0-based index in their ``cell`` field.

Nothing here runs notebook code. ``{var}`` and ``$var`` in ``%etl`` lines are
expanded only from literal assignments (the parameters cell and plain
``name = "literal"`` lines above); anything else is reported as a problem.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl_nb.errors import EtlError, SpecError
from etl_nb.spec import Command, ConnectionSpec, PipelineSpec, Statement, Step, parse_cell, step_id

if TYPE_CHECKING:
    from etl_nb.engine.dag import Dag
    from etl_nb.pipeline import Pipeline

__all__ = [
    "EtlCell",
    "NotebookPipeline",
    "Problem",
    "etl_magics",
    "pipeline_name",
    "read_notebook",
    "read_notebook_node",
]

_SECRET_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_EXPANSION = re.compile(r"\{\{|\}\}|\$\$|\{([^{}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_MAGIC_CALLS = {"run_line_magic", "run_cell_magic"}


@dataclass(frozen=True)
class Problem:
    """Something in the notebook the pipeline could not use: a cell index (or None) and a sentence."""

    cell: int | None
    message: str
    step: str | None = None

    def __str__(self) -> str:
        return f"cell {self.cell + 1}: {self.message}" if self.cell is not None else self.message


@dataclass(frozen=True)
class EtlCell:
    """One ``%etl`` line or ``%%etl`` cell found in the notebook, parsed or not."""

    index: int
    line: str
    body: str | None
    statement: Statement | None = None
    error: str | None = None

    @property
    def is_cell_magic(self) -> bool:
        """``%%etl`` (with a body) rather than a ``%etl`` line."""
        return self.body is not None


@dataclass
class NotebookPipeline:
    """What a notebook declares: its spec, parameters, ``%etl`` cells and problems."""

    path: Path | None
    spec: PipelineSpec
    parameters: dict[str, Any] = field(default_factory=dict)
    parameter_names: list[str] = field(default_factory=list)
    parameters_cell: int | None = None
    problems: list[Problem] = field(default_factory=list)
    cells: list[EtlCell] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The pipeline name (the notebook's file stem as an identifier)."""
        return self.spec.name

    @property
    def ok(self) -> bool:
        """Whether every ``%etl`` statement parsed and fits the graph."""
        return not self.problems

    @property
    def is_pipeline(self) -> bool:
        """Whether the notebook has any ``%etl`` statement at all."""
        return bool(self.cells)

    @property
    def commands(self) -> list[Command]:
        """The line commands (``%etl run``, ``%etl dag`` ...) in notebook order."""
        return [c.statement for c in self.cells if isinstance(c.statement, Command)]

    def dag(self) -> Dag:
        """The graph of the steps that were kept (it always builds)."""
        from etl_nb.engine.dag import build_dag

        return build_dag(self.spec)

    @property
    def edges(self) -> list[tuple[str, str]]:
        """``(upstream, downstream)`` node ids, as ``etl_nb.engine.dag`` infers them."""
        return self.dag().edges

    def pipeline(self, **options: Any) -> Pipeline:
        """A ``Pipeline`` running this spec, with paths relative to the notebook's folder."""
        from etl_nb.pipeline import Pipeline

        if self.path is not None:
            options.setdefault("base_dir", self.path.parent)
        return Pipeline.from_spec(self.spec.model_copy(deep=True), **options)


def pipeline_name(path: str | os.PathLike[str] | None) -> str:
    """A pipeline name from a notebook path: the file stem as an identifier (``notebook`` if none)."""
    if not path:
        return "notebook"
    stem = Path(path).stem if str(path).endswith(".ipynb") else Path(path).name
    name = re.sub(r"[^A-Za-z0-9_]+", "_", stem).strip("_") or "notebook"
    return f"_{name}" if name[0].isdigit() else name


def read_notebook(path: str | os.PathLike[str]) -> NotebookPipeline:
    """Read ``path`` (an ``.ipynb`` file) into a ``NotebookPipeline``; never runs its code.

    Raises ``SpecError`` only when the file is not a readable notebook; a bad
    cell is a ``Problem`` in the result instead.
    """
    import nbformat

    path = Path(path)
    try:
        read: Callable[..., Any] = nbformat.read
        nb = read(path, as_version=4)
    except (OSError, ValueError, nbformat.reader.NotJSONError) as exc:
        raise SpecError(f"Cannot read notebook '{path}': {exc}. Is it an .ipynb file?") from None
    result = read_notebook_node(nb, pipeline_name(path))
    result.path = path
    return result


def read_notebook_node(nb: Any, name: str) -> NotebookPipeline:
    """Like ``read_notebook`` for a notebook already in memory (an ``nbformat`` node or dict)."""
    result = NotebookPipeline(path=None, spec=PipelineSpec(name=name))
    literals: dict[str, Any] = {}
    api_state: dict[str, Any] = {}
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        source = _source(cell)
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags:
            continue  # papermill's output, not the notebook's own declaration
        if "parameters" in tags and result.parameters_cell is None:
            result.parameters_cell = index
            _read_parameters(source, index, result)
            literals.update(result.parameters)
        try:
            code, magics = etl_magics(source)
        except SyntaxError:
            continue  # not Python and no %etl line we could find
        for line, body in magics:
            result.cells.append(_parse(index, line, body, literals, result))
        result.cells.extend(_api_cells(index, code, source, literals, api_state, result))
        literals.update(_literal_assignments(code))
    _build_spec(result)
    result.problems.sort(key=lambda p: (p.cell is None, p.cell or 0))
    return result


def _source(cell: Any) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def etl_magics(source: str) -> tuple[ast.Module, list[tuple[str, str | None]]]:
    """The ``%etl`` lines and ``%%etl`` cell of one code cell's source, as ``(line, body)`` pairs.

    Uses IPython's own input transformer, so continuation lines, indentation
    and strings that merely contain ``%etl`` are read as IPython reads them.
    ``body`` is None for a line magic. Raises ``SyntaxError`` if the cell is
    not Python once its magics are transformed.
    """
    from IPython.core.inputtransformer2 import TransformerManager

    make: Callable[[], Any] = TransformerManager
    manager = make()
    code = ast.parse(manager.transform_cell(source))
    found: list[tuple[int, int, str, str | None]] = []
    for node in ast.walk(code):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _MAGIC_CALLS
            and node.args
            and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args)
        ):
            continue
        args = [str(a.value) for a in node.args if isinstance(a, ast.Constant)]
        if args[0] != "etl":
            continue
        line = args[1] if len(args) > 1 else ""
        body = args[2] if node.func.attr == "run_cell_magic" and len(args) > 2 else None
        found.append((node.lineno, node.col_offset, line, body))
    found.sort()
    return code, [(line, body) for _, _, line, body in found]


def _read_parameters(source: str, index: int, result: NotebookPipeline) -> None:
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        result.problems.append(
            Problem(index, f"the parameters cell is not plain Python (line {exc.lineno}: {exc.msg}).")
        )
        return
    for name, value in _assignments(tree):
        if name not in result.parameter_names:
            result.parameter_names.append(name)
        if value is not _NOT_LITERAL:
            result.parameters[name] = value
    result.spec.parameters = dict(result.parameters)


_NOT_LITERAL = object()


def _assignments(tree: ast.Module) -> list[tuple[str, Any]]:
    """Top-level ``name = value`` pairs; values that are not literals become ``_NOT_LITERAL``."""
    found: list[tuple[str, Any]] = []
    for node in tree.body:
        pairs: list[tuple[ast.expr, ast.expr | None]] = []
        if isinstance(node, ast.Assign):
            pairs = [(target, node.value) for target in node.targets]
        elif isinstance(node, ast.AnnAssign):
            pairs = [(node.target, node.value)]
        for target, value in pairs:
            if isinstance(target, ast.Name):
                found.append((target.id, _literal(value)))
            elif isinstance(target, ast.Tuple | ast.List):
                values: list[ast.expr | None]
                if isinstance(value, ast.Tuple | ast.List) and len(value.elts) == len(target.elts):
                    values = list(value.elts)
                else:
                    values = [None] * len(target.elts)
                found.extend(
                    (t.id, _literal(v))
                    for t, v in zip(target.elts, values, strict=True)
                    if isinstance(t, ast.Name)
                )
    return found


def _literal(node: ast.expr | None) -> Any:
    if node is None:
        return _NOT_LITERAL
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NOT_LITERAL


def _literal_assignments(code: ast.Module) -> dict[str, Any]:
    return {name: value for name, value in _assignments(code) if value is not _NOT_LITERAL}


def _expand(line: str, literals: dict[str, Any]) -> str:
    """IPython's ``{var}``/``$var`` expansion, from literal values only; ``${SECRET}`` stays."""

    def substitute(match: re.Match[str]) -> str:
        text = match.group(0)
        if text in ("{{", "}}"):
            return text[0]
        if text == "$$":
            return "$"
        name = (match.group(1) if match.group(1) is not None else match.group(2)).strip()
        if name in literals:
            return str(literals[name])
        raise KeyError(text)

    protected = _SECRET_REF.sub(lambda m: f"\x00{m.group(1)}\x00", line)
    expanded = _EXPANSION.sub(substitute, protected)
    return re.sub("\x00([A-Za-z_][A-Za-z0-9_]*)\x00", lambda m: "${" + m.group(1) + "}", expanded)


def _parse(
    index: int, line: str, body: str | None, literals: dict[str, Any], result: NotebookPipeline
) -> EtlCell:
    try:
        expanded = _expand(line, literals)
    except KeyError as exc:
        message = (
            f"'%etl {line.strip()}' uses {exc.args[0]}, which the reader cannot know without running the "
            "notebook. Use a literal, or a name assigned a literal in the parameters cell."
        )
        result.problems.append(Problem(index, message))
        return EtlCell(index, line, body, error=message)
    try:
        statement = parse_cell(expanded, body, cell=index)
    except SpecError as exc:
        result.problems.append(Problem(index, exc.message, exc.step))
        return EtlCell(index, expanded, body, error=exc.message)
    return EtlCell(index, expanded, body, statement=statement)


def _api_cells(
    index: int,
    code: ast.Module,
    source: str,
    literals: dict[str, Any],
    state: dict[str, Any],
    result: NotebookPipeline,
) -> list[EtlCell]:
    """Steps declared through the Python API (``p.extract(...)``), as ``etl-nb export`` writes them.

    The hook that lets an exported notebook read back as the pipeline it came
    from; the recognising lives with the export, in ``etl_nb.notebook.export``.
    """
    from etl_nb.notebook.export import api_statements

    cells: list[EtlCell] = []
    for text, statement, error in api_statements(code, source, index, literals, state):
        if error is not None:
            result.problems.append(Problem(index, error))
        cells.append(EtlCell(index, text, None, statement=statement, error=error))
    return cells


def _build_spec(result: NotebookPipeline) -> None:
    spec = result.spec
    seen: dict[str, int] = {}
    for cell in result.cells:
        statement = cell.statement
        if statement is None or isinstance(statement, Command):
            continue
        identity = statement.name if isinstance(statement, ConnectionSpec) else step_id(statement)
        if identity in seen:
            result.problems.append(
                Problem(
                    cell.index,
                    f"'{identity}' is declared again (first in cell {seen[identity] + 1}); this later "
                    "cell wins. Give one of them another name.",
                    identity,
                )
            )
        seen[identity] = cell.index
        try:
            spec.add(statement)
        except SpecError as exc:
            result.problems.append(Problem(cell.index, exc.message, exc.step))
    _drop_invalid_steps(result)


def _drop_invalid_steps(result: NotebookPipeline) -> None:
    """Leave out steps the graph cannot take (unknown table or connection), one at a time."""
    from etl_nb.engine.dag import build_dag

    spec = result.spec
    for _ in range(len(spec.steps) + 1):
        try:
            build_dag(spec).order()
            return
        except EtlError as exc:
            offender = offending_step(spec, exc)
            if offender is None:
                result.problems.append(Problem(None, exc.message, exc.step))
                return
            spec.steps.remove(offender)
            result.problems.append(Problem(offender.cell, exc.message, exc.step))


def offending_step(spec: PipelineSpec, error: EtlError) -> Step | None:
    """The step whose removal makes ``error`` go away: leaves (loads, checks) are tried first."""
    from etl_nb.engine.dag import build_dag

    related = [
        s
        for s in spec.steps
        if getattr(s, "name", None) == error.step or getattr(s, "step", None) == error.step
    ]
    related.sort(key=lambda s: 0 if s.verb in ("load", "check") else 1)
    for candidate in related:
        trial = spec.model_copy()
        trial.steps = [s for s in spec.steps if s is not candidate]
        try:
            build_dag(trial).order()
        except EtlError as exc:
            if exc.message == error.message:
                continue
        return candidate
    return None
