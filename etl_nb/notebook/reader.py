"""An ``.ipynb`` file → its pipeline, without a kernel.

``read_notebook(path)`` finds every ``%%etl`` cell and every ``%etl`` line in
the notebook's code cells (read once each, by ``etl_nb.notebook.cells``, as the
magics' kernel reads them), parses each with the same ``parse_cell`` the
magics use, adds the steps of Python API calls as ``etl-nb export`` writes
them (``etl_nb.notebook.api_reader``), and returns a ``NotebookPipeline``:

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
N = index + 1 (``etl_nb.notebook.cellref``, as ``etl-nb run`` and export say it).
Statements carry the same 0-based index in their ``cell`` field.

Nothing here runs notebook code. ``{var}`` and ``$var`` in ``%etl`` lines are
expanded (``cells.expand``) only from literal assignments (the parameters cell
and ``name = "literal"`` lines above); anything else is reported as a problem.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etl_nb.engine.dag import Dag, build_dag
from etl_nb.errors import EtlError, SpecError
from etl_nb.notebook.api_reader import api_statements
from etl_nb.notebook.cellref import at_cell, cell_label
from etl_nb.notebook.cells import (
    CodeCell,
    NotExpandable,
    code_cells,
    expand,
    literal_assignments,
    read_parameters,
)
from etl_nb.pipeline import Pipeline
from etl_nb.project import pipeline_name
from etl_nb.spec import Command, ConnectionSpec, PipelineSpec, Statement, Step, parse_cell, step_id

__all__ = [
    "EtlCell",
    "NotebookPipeline",
    "Problem",
    "offending_step",
    "pipeline_name",
    "read_notebook",
    "read_notebook_node",
]


@dataclass(frozen=True)
class Problem:
    """Something in the notebook the pipeline could not use: a cell index (or None) and a sentence."""

    cell: int | None
    message: str
    step: str | None = None

    def __str__(self) -> str:
        return at_cell(self.cell, self.message)


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
        return build_dag(self.spec)

    @property
    def edges(self) -> list[tuple[str, str]]:
        """``(upstream, downstream)`` node ids, as ``etl_nb.engine.dag`` infers them."""
        return self.dag().edges

    def pipeline(self, **options: Any) -> Pipeline:
        """A ``Pipeline`` running this spec, with paths relative to the notebook's folder."""
        if self.path is not None:
            options.setdefault("base_dir", self.path.parent)
        return Pipeline.from_spec(self.spec.model_copy(deep=True), **options)


def read_notebook(path: str | os.PathLike[str]) -> NotebookPipeline:
    """Read ``path`` (an ``.ipynb`` file) into a ``NotebookPipeline``; never runs its code.

    Raises ``SpecError`` only when the file is not a readable notebook; a bad
    cell is a ``Problem`` in the result instead.
    """
    import nbformat  # on first use: the JSON-schema validation it loads is slow to import

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
    cells = list(code_cells(nb))
    parameters = read_parameters(cells)
    result.parameters_cell = parameters.cell
    result.parameters, result.parameter_names = parameters.values, parameters.names
    result.spec.parameters = dict(parameters.values)
    if parameters.problem is not None:
        result.problems.append(Problem(parameters.cell, parameters.problem))
    literals: dict[str, Any] = {}
    api_state: dict[str, Any] = {}
    for cell in cells:
        if cell.index == parameters.cell:
            literals.update(parameters.values)
        if cell.code is None:
            continue  # not Python and no %etl line we could find
        for line, body in cell.magics:
            result.cells.append(_parse(cell.index, line, body, literals, result))
        result.cells.extend(_api_cells(cell, literals, api_state, result))
        literals.update(literal_assignments(cell.code))
    _build_spec(result)
    result.problems.sort(key=lambda p: (p.cell is None, p.cell or 0))
    return result


def _parse(
    index: int, line: str, body: str | None, literals: dict[str, Any], result: NotebookPipeline
) -> EtlCell:
    """One ``%etl`` statement, its ``{var}``/``$var`` fields expanded from literal values only."""
    try:
        expanded = expand(line, lambda name: str(literals[name]) if name in literals else None)
    except NotExpandable as exc:
        message = (
            f"'%etl {line.strip()}' uses {exc.text}, which the reader cannot know without running the "
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
    cell: CodeCell, literals: dict[str, Any], state: dict[str, Any], result: NotebookPipeline
) -> list[EtlCell]:
    """Steps declared through the Python API (``p.extract(...)``), as ``etl-nb export`` writes them."""
    assert cell.code is not None
    cells: list[EtlCell] = []
    for text, statement, error in api_statements(cell.code, cell.source, cell.index, literals, state):
        if error is not None:
            result.problems.append(Problem(cell.index, error))
        cells.append(EtlCell(cell.index, text, None, statement=statement, error=error))
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
                    f"'{identity}' is declared again (first in {cell_label(seen[identity])}); this later "
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
