"""The planner: a notebook's cells → chunks of code and markdown, in the notebook's order.

``Planner`` reads each code cell once (``cells.code_cells``), parses its
``%etl`` statements with their ``{expr}`` fields as placeholders, refuses a
pipeline whose graph does not build, picks names that do not clash with the
notebook's own (``p``, ``result`` ...), and walks the cells: markdown and
ordinary code stay (rewritten for the API), each statement becomes the
emitter's code, and ``p.run()`` goes where the notebook said ``%etl run``,
before code that reads a step's output, and at the end if steps were declared
after the last run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from etl_nb.engine.dag import build_dag
from etl_nb.errors import EtlError, SpecError
from etl_nb.notebook.cellref import at_cell
from etl_nb.notebook.cells import (
    CodeCell,
    cell_source,
    code_cells,
    expand,
    literal_assignments,
    read_parameters,
)
from etl_nb.notebook.export.emit import PLACEHOLDER, Emitter, Found, has_placeholder
from etl_nb.notebook.export.rewrite import (
    ETL_LINE,
    comment_magics,
    drop_load_ext,
    has_load_ext,
    is_load_ext,
    reads_pipeline,
    use_pipeline,
)
from etl_nb.notebook.reader import offending_step
from etl_nb.spec import Command, ExtractStep, PipelineSpec, Statement, TransformStep, parse_cell

__all__ = ["Chunk", "Plan", "Planner"]


@dataclass
class Chunk:
    """One cell of the output: markdown, code, or the parameters cell."""

    kind: Literal["markdown", "code", "parameters"]
    text: str
    cell_id: str | None = None


@dataclass
class Plan:
    """The output's cells, and what the script around them needs."""

    chunks: list[Chunk] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)  # script only: hoisted import lines
    parameters: dict[str, Any] = field(default_factory=dict)
    parameter_names: list[str] = field(default_factory=list)
    needs_dt: bool = False
    needs_pl: bool = False


class Planner:
    """The plan for one notebook; raises ``SpecError`` naming the cell for what it cannot export."""

    def __init__(self, nb: Any, name: str, *, script: bool, base_dir: str) -> None:
        self.name = name
        self.script = script
        self.base_dir = base_dir
        self.cells: list[Any] = list(nb.get("cells", []))
        self.code: dict[int, CodeCell] = {c.index: c for c in code_cells(nb)}
        self.parameters = read_parameters(list(self.code.values()))
        self.literals: dict[str, Any] = dict(self.parameters.values)
        self.found: dict[int, list[Found]] = {}
        self._parse_all()
        self._check_graph()
        used, assigned = self._names_in_code()
        self.p = _free_name(("p", "pipeline", "etl_pipeline"), used)
        self.parser = _free_name(("parser", "cli_parser", "etl_parser"), used)
        self.args = _free_name(("args", "cli_args", "etl_args"), used)
        statements = [f.statement for f in self._all_found()]
        self.emitter = Emitter(
            name=name,
            p=self.p,
            result=_free_name(("result", "run_result", "etl_result"), used),
            script=script,
            tables={s.name for s in statements if isinstance(s, ExtractStep | TransformStep)},
            literals=self.literals,
            defined=set(self.literals) | set(self.parameters.names) | assigned,
            statement_params=_run_parameters(statements),
        )

    # --- reading --------------------------------------------------------------------------

    def _all_found(self) -> list[Found]:
        return [f for index in sorted(self.found) for f in self.found[index]]

    def _parse_all(self) -> None:
        for cell in self.code.values():
            if cell.code is None:
                if "%etl" in cell.source:
                    raise _cell_error(cell.index, "it is not Python once its %etl lines are read")
                continue
            for line, body in cell.magics:
                self.found.setdefault(cell.index, []).append(_parse(cell.index, line, body))
            self.literals.update(literal_assignments(cell.code))

    def _check_graph(self) -> None:
        """Refuse a pipeline whose graph does not build (unknown table, connection, cycle)."""
        spec = PipelineSpec(name=self.name)
        for found in self._all_found():
            statement = found.statement
            if isinstance(statement, Command):
                continue
            if found.expressions and has_placeholder(_names_of(statement)):
                return  # a name computed at run time: the graph is only known then
            try:
                spec.add(statement)
            except SpecError as exc:
                raise _cell_error(found.cell, exc.message, exc.step) from None
        try:
            build_dag(spec).order()
        except EtlError as exc:
            cell = _culprit(spec, exc)
            if cell is None:
                raise SpecError(f"{_one_line(exc.message)} Nothing was written.") from None
            raise _cell_error(cell, exc.message, exc.step) from None

    def _names_in_code(self) -> tuple[set[str], set[str]]:
        """Names the notebook's code uses (so generated names do not clash) and names it assigns.

        Assigned names count only in cells without ``%etl`` statements: a Python
        transform kept as a string may read them as parameters.
        """
        used: set[str] = set(self.parameters.names)
        assigned: set[str] = set()
        for cell in self.code.values():
            trees = [] if cell.code is None else [cell.code, *_magic_bodies(cell.code)]
            trees += [
                tree
                for f in self.found.get(cell.index, [])
                if isinstance(f.statement, TransformStep) and f.statement.python
                for tree in _parsed(f.statement.python)
            ]
            for tree in trees:
                names = [n for n in ast.walk(tree) if isinstance(n, ast.Name)]
                used |= {n.id for n in names}
                if cell.index not in self.found:
                    assigned |= {n.id for n in names if isinstance(n.ctx, ast.Store)}
        return used, assigned

    # --- planning -------------------------------------------------------------------------

    def plan(self) -> Plan:
        """The chunks of the output, in the notebook's order."""
        em = self.emitter
        plan = Plan(parameters=dict(self.parameters.values), parameter_names=list(self.parameters.names))
        setup_at = self._setup_cell()
        bodies: list[Chunk] = []
        setup = Chunk("code", "", None)
        for index, cell in enumerate(self.cells):
            cell_id = cell.get("id")
            if index == setup_at:
                bodies.append(setup)
            if cell.get("cell_type") == "markdown":
                bodies.append(Chunk("markdown", cell_source(cell).strip("\n"), cell_id))
                continue
            if index not in self.code:
                continue
            if index == self.parameters.cell:
                bodies.append(Chunk("parameters", cell_source(cell).strip("\n"), cell_id))
                if self.script and plan.parameter_names:
                    lines = em.argparse_lines(plan.parameter_names, plan.parameters, self.parser, self.args)
                    bodies.append(Chunk("code", "\n".join(lines), None))
                continue
            lines = self._etl_cell(index) if index in self.found else self._code_cell(index)
            text = "\n".join(lines).strip("\n")
            if text.strip():
                bodies.append(Chunk("code", text, cell_id))
        if em.dirty:
            bodies.append(Chunk("code", "\n".join(em.run_lines()), None))
        setup.text = "\n".join(em.setup_lines(self.base_dir))  # last: it imports what the others use
        plan.chunks = bodies
        plan.needs_dt, plan.needs_pl = em.needs_dt, em.needs_pl
        return plan

    def _setup_cell(self) -> int | None:
        """Where ``p = Pipeline(...)`` goes: at ``%load_ext etl_nb``, or before the first statement."""
        first_etl = min(self.found, default=None)
        setup_at = next(
            (
                i
                for i, c in enumerate(self.cells)
                if c.get("cell_type") == "code" and has_load_ext(cell_source(c))
            ),
            first_etl,
        )
        if setup_at is not None and first_etl is not None and first_etl < setup_at:
            return first_etl
        return setup_at

    def _code_cell(self, index: int) -> list[str]:
        em = self.emitter
        text = drop_load_ext(self.code[index].source)
        prefix: list[str] = []
        if reads_pipeline(text):
            if em.dirty and ".table(" in text:  # it reads a step's output: run the steps declared so far
                prefix, em.dirty = [*em.run_lines(), ""], False
            text = use_pipeline(text, self.p)
        if self.script:
            text = comment_magics(text)
        return [*prefix, *text.split("\n")]

    def _etl_cell(self, index: int) -> list[str]:
        """A cell with ``%etl`` lines: each becomes its statement's code, the other lines stay."""
        queue = list(self.found[index])
        source = self.code[index].source
        if source.lstrip().startswith("%%etl"):
            return self.emitter.emit(queue[0])
        out: list[str] = []
        raw = source.split("\n")
        i = 0
        while i < len(raw):
            line = raw[i]
            match = ETL_LINE.match(line)
            if is_load_ext(line):
                i += 1
                continue
            if match is None:
                out.append(comment_magics(line) if self.script else line)
                i += 1
                continue
            while raw[i].endswith("\\") and i + 1 < len(raw):  # a line continued with backslashes
                i += 1
            i += 1
            if not queue:
                raise _cell_error(index, "export cannot follow its %etl lines; put each on a line of its own")
            out += self.emitter.emit(queue.pop(0), match.group(1))
        if queue:
            raise _cell_error(index, "export cannot follow its %etl lines; put each on a line of its own")
        return out


def _parse(index: int, line: str, body: str | None) -> Found:
    """One ``%etl`` statement, each ``{expr}`` field kept as a placeholder the emitter turns into code."""
    expressions: dict[int, str] = {}

    def placeholder(expression: str) -> str:
        expressions[len(expressions)] = expression
        return f"_etlnb_x{len(expressions) - 1}_"

    expanded = expand(line, placeholder)
    try:
        statement = parse_cell(expanded, body, cell=index)
    except SpecError as exc:
        message = PLACEHOLDER.sub(lambda m: "{" + expressions[int(m.group(1))] + "}", exc.message)
        raise _cell_error(index, message, exc.step) from None
    return Found(index, line, body, statement, expressions)


def _magic_bodies(code: ast.Module) -> Iterator[ast.Module]:
    """The bodies of the cell's other cell magics (``%%time``...) that are Python: IPython runs them too."""
    for node in ast.walk(code):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "run_cell_magic"
            and len(node.args) == 3
            and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args)
        ):
            magic, _, body = (str(a.value) for a in node.args if isinstance(a, ast.Constant))
            if magic != "etl":
                yield from _parsed(body)


def _parsed(text: str) -> list[ast.Module]:
    try:
        return [ast.parse(text)]
    except SyntaxError:
        return []


def _cell_error(index: int, message: str, step: str | None = None) -> SpecError:
    return SpecError(
        f"Cannot export: {at_cell(index, _one_line(message))} Nothing was written.", step=step, cell=index
    )


def _one_line(message: str) -> str:
    text = " ".join(message.split())
    return text if text.endswith((".", "?", "!")) else text + "."


def _culprit(spec: PipelineSpec, error: EtlError) -> int | None:
    """The cell of the step without which ``error`` goes away, else of the first step it names."""
    offender = offending_step(spec, error)
    if offender is not None:
        return offender.cell
    related = [s for s in spec.steps if error.step in (getattr(s, "name", None), getattr(s, "step", None))]
    return related[0].cell if related else None


def _run_parameters(statements: list[Statement]) -> list[str]:
    """The ``{{ name }}`` parameters the extracts and transforms use, in order: ``p.run(params=...)``."""
    names: list[str] = []
    for statement in statements:
        if isinstance(statement, ExtractStep | TransformStep):
            names += [n for n in statement.parameters if n not in names]
    return names


def _free_name(choices: tuple[str, ...], taken: set[str]) -> str:
    return next((c for c in choices if c not in taken), choices[-1] + "_")


def _names_of(statement: Statement) -> list[str]:
    return [v for k in ("name", "source", "step", "to") if isinstance(v := getattr(statement, k, None), str)]
