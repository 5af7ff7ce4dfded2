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

``api_statements`` is the way back: the reader calls it to see the steps
of an exported notebook (``p.extract(...)`` calls) as it sees ``%%etl`` cells.
"""

from __future__ import annotations

import ast
import datetime as dt
import io
import os
import re
import shlex
import sys
import tempfile
import textwrap
import tokenize
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from etl_nb.errors import EtlError, SpecError
from etl_nb.spec import (
    CheckStep,
    Command,
    ConnectionSpec,
    ExtractStep,
    LoadStep,
    PipelineSpec,
    Statement,
    Step,
    TransformStep,
    infer_connection_type,
    parse_cell,
)

__all__ = [
    "LINE_LENGTH",
    "ExportFormat",
    "api_statements",
    "default_output",
    "export_notebook",
    "render_notebook",
    "render_script",
]

ExportFormat = Literal["py", "ipynb"]
LINE_LENGTH = 110  # the project's ruff line length; generated code is formatted for it
_INDENT = "    "
_SECRET_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_EXPANSION = re.compile(r"\{\{|\}\}|\$\$|\{([^{}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_PLACEHOLDER = re.compile(r"_etlnb_x(\d+)_")
_ETL_LINE = re.compile(r"^(\s*)%etl(\s|$)")
_LOAD_EXT = re.compile(r"^\s*%load_ext\s+etl_nb\s*$")
_CURRENT = re.compile(r"\betl_nb\.current\(\)")
_DEFAULT_LIMIT = 10


# --------------------------------------------------------------------------------------
# The public face
# --------------------------------------------------------------------------------------


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
    import nbformat

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
    from etl_nb.notebook.reader import pipeline_name

    name = pipeline_name(source)
    base_dir = Path(os.path.relpath(source.resolve().parent, target.resolve().parent)).as_posix()
    if to == "py":
        text = render_script(nb, name=name, source_name=source.name, base_dir=base_dir)
    else:
        writes: Callable[..., str] = nbformat.writes
        text = writes(render_notebook(nb, name=name, base_dir=base_dir))
    _write_atomically(target, text)
    return target


def render_script(nb: Any, *, name: str, source_name: str = "notebook.ipynb", base_dir: str = ".") -> str:
    """The script for notebook ``nb`` (an ``nbformat`` node or dict) as text.

    ``name`` is the pipeline's name; ``base_dir`` is the notebook's folder
    relative to the script's (paths in the pipeline resolve against it).
    """
    plan = _Exporter(nb, name, script=True, base_dir=base_dir).plan()
    return _join_script(plan, source_name)


def render_notebook(nb: Any, *, name: str, base_dir: str = ".") -> Any:
    """The plain notebook for notebook ``nb`` as an ``nbformat`` node (no outputs).

    ``base_dir`` is the source notebook's folder relative to the new one's.
    """
    import nbformat

    v4: Any = nbformat.v4  # untyped
    plan = _Exporter(nb, name, script=False, base_dir=base_dir).plan()
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


# --------------------------------------------------------------------------------------
# Planning: cells → chunks of code and markdown
# --------------------------------------------------------------------------------------


@dataclass
class _Chunk:
    kind: Literal["markdown", "code", "parameters"]
    text: str
    cell_id: str | None = None


@dataclass
class _Plan:
    chunks: list[_Chunk] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)  # script only: hoisted import lines
    parameters: dict[str, Any] = field(default_factory=dict)
    parameter_names: list[str] = field(default_factory=list)


@dataclass
class _Found:
    """One ``%etl`` statement of the notebook, parsed with ``{expr}`` expansions as placeholders."""

    cell: int
    line: str
    body: str | None
    statement: Statement
    expressions: dict[int, str]


class _Exporter:
    def __init__(self, nb: Any, name: str, *, script: bool, base_dir: str) -> None:
        from etl_nb.notebook.reader import read_notebook_node

        self.nb = nb
        self.name = name
        self.script = script
        self.base_dir = base_dir
        self.cells: list[Any] = list(nb.get("cells", []))
        self.read = read_notebook_node(nb, name)
        self.literals: dict[str, Any] = dict(self.read.parameters)
        self.found: dict[int, list[_Found]] = {}
        self.needs_pl = False
        self.needs_dt = False
        self.extra_params: list[str] = []  # names string-form Python transforms read
        self._parse_all()
        self._check_graph()
        taken = self._names_in_code()
        self.p = _free_name(("p", "pipeline", "etl_pipeline"), taken)
        self.result = _free_name(("result", "run_result", "etl_result"), taken)
        self.parser = _free_name(("parser", "cli_parser", "etl_parser"), taken)
        self.args = _free_name(("args", "cli_args", "etl_args"), taken)
        self.tables = {
            f.statement.name
            for f in self._all_found()
            if isinstance(f.statement, ExtractStep | TransformStep)
        }

    # --- reading --------------------------------------------------------------------------

    def _all_found(self) -> list[_Found]:
        return [f for index in sorted(self.found) for f in self.found[index]]

    def _parse_all(self) -> None:
        from etl_nb.notebook.reader import etl_magics

        for index, cell in enumerate(self.cells):
            if cell.get("cell_type") != "code" or _skipped(cell):
                continue
            source = _source(cell)
            try:
                code, magics = etl_magics(source)
            except SyntaxError:
                if "%etl" in source:
                    raise _cell_error(index, "it is not Python once its %etl lines are read") from None
                continue
            for line, body in magics:
                self.found.setdefault(index, []).append(self._parse(index, line, body))
            self.literals.update(_literal_assignments(code))

    def _parse(self, index: int, line: str, body: str | None) -> _Found:
        expressions: dict[int, str] = {}

        def placeholder(match: re.Match[str]) -> str:
            text = match.group(0)
            if text in ("{{", "}}"):
                return text[0]
            if text == "$$":
                return "$"
            expression = (match.group(1) if match.group(1) is not None else match.group(2)).strip()
            expressions[len(expressions)] = expression
            return f"_etlnb_x{len(expressions) - 1}_"

        protected = _SECRET_REF.sub(lambda m: f"\x00{m.group(1)}\x00", line)
        expanded = _EXPANSION.sub(placeholder, protected)
        expanded = re.sub("\x00([A-Za-z_][A-Za-z0-9_]*)\x00", lambda m: "${" + m.group(1) + "}", expanded)
        try:
            statement = parse_cell(expanded, body, cell=index)
        except SpecError as exc:
            message = _PLACEHOLDER.sub(lambda m: "{" + expressions[int(m.group(1))] + "}", exc.message)
            raise _cell_error(index, message, exc.step) from None
        return _Found(index, line, body, statement, expressions)

    def _check_graph(self) -> None:
        """Refuse a pipeline whose graph does not build (unknown table, connection, cycle)."""
        from etl_nb.engine.dag import build_dag

        spec = PipelineSpec(name=self.name)
        for found in self._all_found():
            statement = found.statement
            if isinstance(statement, Command):
                continue
            if found.expressions and _has_placeholder(_names_of(statement)):
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

    def _names_in_code(self) -> set[str]:
        """Every name ordinary code (and Python transforms) uses, so generated names do not clash."""
        names: set[str] = set(self.read.parameter_names)
        for index, cell in enumerate(self.cells):
            if cell.get("cell_type") != "code" or _skipped(cell):
                continue
            sources = [_source(cell)] if index not in self.found else []
            sources += [
                f.statement.python
                for f in self.found.get(index, [])
                if isinstance(f.statement, TransformStep) and f.statement.python
            ]
            if index in self.found:
                sources.append("\n".join(self._other_lines(index)))
            for text in sources:
                try:
                    tree = ast.parse(_without_magics(text))
                except SyntaxError:
                    continue
                names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        return names

    def _other_lines(self, index: int) -> list[str]:
        source = _source(self.cells[index])
        if source.lstrip().startswith("%%etl"):
            return []
        return [line for line in source.split("\n") if not _ETL_LINE.match(line)]

    # --- planning -------------------------------------------------------------------------

    def plan(self) -> _Plan:
        plan = _Plan(parameters=dict(self.read.parameters), parameter_names=list(self.read.parameter_names))
        first_etl = min(self.found, default=None)
        setup_at = next(
            (i for i, c in enumerate(self.cells) if c.get("cell_type") == "code" and _has_load_ext(c)),
            first_etl,
        )
        if setup_at is not None and first_etl is not None and first_etl < setup_at:
            setup_at = first_etl
        dirty = False
        bodies: list[_Chunk] = []
        setup = _Chunk("code", "", None)
        for index, cell in enumerate(self.cells):
            cell_id = cell.get("id")
            if index == setup_at:
                bodies.append(setup)
            if cell.get("cell_type") == "markdown":
                bodies.append(_Chunk("markdown", _source(cell).strip("\n"), cell_id))
                continue
            if cell.get("cell_type") != "code" or _skipped(cell):
                continue
            if index == self.read.parameters_cell:
                bodies.append(_Chunk("parameters", _source(cell).strip("\n"), cell_id))
                if self.script and plan.parameter_names:
                    bodies.append(_Chunk("code", "\n".join(self._argparse(plan)), None))
                continue
            if index in self.found:
                lines, dirty = self._etl_cell(index, dirty)
            else:
                lines, dirty = self._code_cell(index, dirty)
            text = "\n".join(lines).strip("\n")
            if text.strip():
                bodies.append(_Chunk("code", text, cell_id))
        if dirty:
            bodies.append(_Chunk("code", "\n".join(self._run_lines(None, "")), None))
        setup.text = "\n".join(self._setup())  # last: it imports what the other chunks turned out to use
        plan.chunks = bodies
        if self.script:
            plan.imports = self._script_imports(plan)
        return plan

    def _setup(self) -> list[str]:
        lines: list[str] = []
        if self.script:
            directory = "Path(__file__).parent"
            if self.base_dir not in (".", ""):
                directory += f" / {_str_literal(self.base_dir)}"
            args: list[_Arg] = [_Raw(_str_literal(self.name)), ("base_dir", _Raw(directory))]
        else:
            imports = ["import datetime as dt"] if self.needs_dt else []
            imports += ["import polars as pl"] if self._needs_pl() else []
            lines = [*imports, *([""] if imports else []), "from etl_nb import Pipeline", ""]
            args = [_Raw(_str_literal(self.name))]
            if self.base_dir not in (".", ""):
                args.append(("base_dir", _Raw(_str_literal(self.base_dir))))
        return lines + _layout(_Call("Pipeline", args), f"{self.p} = ", "", "")

    def _needs_pl(self) -> bool:
        return self.needs_pl

    def _argparse(self, plan: _Plan) -> list[str]:
        parser, args = self.parser, self.args
        lines = [
            "# The parameters above are the defaults; options on the command line override them.",
            *_layout(
                _Call(
                    "argparse.ArgumentParser",
                    [("description", _Raw(_str_literal(f"Run the {self.name} pipeline.")))],
                ),
                f"{parser} = ",
                "",
                "",
            ),
        ]
        for name in plan.parameter_names:
            call_args: list[_Arg] = [_Raw(_str_literal(_option(name)))]
            value = plan.parameters.get(name, _UNKNOWN)
            if isinstance(value, bool):
                call_args.append(("action", _Raw("argparse.BooleanOptionalAction")))
            elif isinstance(value, int | float):
                call_args.append(("type", _Raw(type(value).__name__)))
            elif isinstance(value, list | dict):
                call_args.append(("type", _Raw("json.loads")))
            call_args.append(("default", _Raw(name)))
            lines += _layout(_Call(f"{parser}.add_argument", call_args), "", "", "")
        lines.append(f"{args} = {parser}.parse_args()")
        lines += [f"{name} = {args}.{name}" for name in plan.parameter_names]
        return lines

    def _script_imports(self, plan: _Plan) -> list[str]:
        stdlib: set[str] = set()
        third: set[str] = set()
        first: set[str] = {"from etl_nb import Pipeline"}
        if plan.parameter_names:
            stdlib.add("import argparse")
            if any(isinstance(v, list | dict) for v in plan.parameters.values()):
                stdlib.add("import json")
        stdlib.add("from pathlib import Path")
        if self.needs_dt:
            stdlib.add("import datetime as dt")
        if self._needs_pl():
            third.add("import polars as pl")
        for chunk in plan.chunks:
            if chunk.kind == "markdown":
                continue
            chunk.text, hoisted = _hoist_imports(chunk.text)
            for line in hoisted:
                module = line.split()[1].split(".")[0]
                if module == "etl_nb":
                    first.add(line)
                elif module in sys.stdlib_module_names or module == "__future__":
                    stdlib.add(line)
                else:
                    third.add(line)
        plan.chunks = [c for c in plan.chunks if c.text.strip() or c.kind == "markdown"]
        blocks = [_sorted_imports(group) for group in (stdlib, third, first) if group]
        return [line for block in blocks for line in [*block, ""]][:-1]

    # --- cells ----------------------------------------------------------------------------

    def _code_cell(self, index: int, dirty: bool) -> tuple[list[str], bool]:
        source = _source(self.cells[index])
        lines = [line for line in source.split("\n") if not _LOAD_EXT.match(line)]
        text = "\n".join(lines)
        prefix: list[str] = []
        if _CURRENT.search(text):
            if dirty and ".table(" in text:
                prefix, dirty = [*self._run_lines(None, ""), ""], False
            text = _CURRENT.sub(self.p, text)
            if not re.search(r"\betl_nb\b", _IMPORT_ETL_NB.sub("", text)):
                text = re.sub(r"\n{3,}", "\n\n", _IMPORT_ETL_NB.sub("", text)).strip("\n")
        if self.script:
            text = _comment_magics(text)
        return [*prefix, *text.split("\n")], dirty

    def _etl_cell(self, index: int, dirty: bool) -> tuple[list[str], bool]:
        found = self.found[index]
        source = _source(self.cells[index])
        if source.lstrip().startswith("%%etl"):
            lines, dirty = self._statement(found[0], "", dirty)
            return lines, dirty
        out: list[str] = []
        queue = list(found)
        raw = source.split("\n")
        i = 0
        while i < len(raw):
            line = raw[i]
            match = _ETL_LINE.match(line)
            if _LOAD_EXT.match(line):
                i += 1
                continue
            if match is None:
                out.append(_comment_magics(line) if self.script else line)
                i += 1
                continue
            while raw[i].endswith("\\") and i + 1 < len(raw):
                i += 1
            i += 1
            if not queue:
                raise _cell_error(index, "export cannot follow its %etl lines; put each on a line of its own")
            lines, dirty = self._statement(queue.pop(0), match.group(1), dirty)
            out += lines
        if queue:
            raise _cell_error(index, "export cannot follow its %etl lines; put each on a line of its own")
        return out, dirty

    def _statement(self, found: _Found, indent: str, dirty: bool) -> tuple[list[str], bool]:
        statement = found.statement
        if isinstance(statement, Command):
            lines, dirty = self._command(found, statement, dirty)
        else:
            lines, dirty = self._declaration(found), True
        return [indent + line if line else line for line in lines], dirty

    def _declaration(self, found: _Found) -> list[str]:
        statement = found.statement
        text = self._text(found)
        p = self.p
        if isinstance(statement, ConnectionSpec):
            args: list[_Arg] = [text(statement.name), text(statement.url)]
            if statement.type != infer_connection_type(statement.url):
                args.append(("type", self._literal(statement.type)))
            args += self._options(statement.options)
            return _layout(_Call(f"{p}.connect", args), "", "", "")
        if isinstance(statement, ExtractStep):
            args = [text(statement.name), ("source", text(statement.source))]
            if statement.query is not None:
                args.append(("query", _Raw(_code_string(statement.query))))
            for key in ("path", "format", "options", "params", "records", "paginate"):
                value = getattr(statement, key)
                if value not in (None, {}):
                    args.append((key, text(value) if key == "path" else self._literal(value)))
            if statement.incremental:
                args.append(("incremental", text(statement.incremental)))
            return _layout(_Call(f"{p}.extract", args), "", "", "")
        if isinstance(statement, TransformStep):
            return self._transform(found, statement)
        if isinstance(statement, CheckStep):
            rules = yaml.safe_load(found.body or "")
            args = [text(statement.step), self._literal(rules)]
            if statement.warn:
                args.append(("warn", _Raw("True")))
            return _layout(_Call(f"{p}.check", args), "", "", "")
        assert isinstance(statement, LoadStep)
        args = [text(statement.step), ("to", text(statement.to))]
        args.append(("table", text(statement.table)) if statement.table else ("path", text(statement.path)))
        if statement.mode != "append":
            args.append(("mode", text(statement.mode)))
        if statement.key:
            keys = statement.key
            args.append(("key", text(keys[0]) if len(keys) == 1 else _Seq("[", "]", [text(k) for k in keys])))
        return _layout(_Call(f"{p}.load", args), "", "", "")

    def _transform(self, found: _Found, step: TransformStep) -> list[str]:
        name = self._text(found)(step.name)
        if step.sql is not None:
            return _layout(
                _Call(f"{self.p}.transform", [name, ("sql", _Raw(_code_string(step.sql)))]), "", "", ""
            )
        from etl_nb.engine.dag import python_free_names

        code = step.python or ""
        free = python_free_names(code, step.name)
        inputs = [n for n in free if n in self.tables and n != step.name]
        function = _as_function(step.name, code, inputs, free)
        if function is not None and not _has_placeholder([step.name]):
            self.needs_pl = self.needs_pl or "pl" in free
            call = _Call(f"{self.p}.transform", [name, ("python", _Raw(step.name))])
            return [*function, "", "", *_layout(call, "", "", "")]
        defined = set(self.literals) | set(self.read.parameter_names) | self._assigned_names()
        for n in free:
            if n not in self.tables and n != "pl" and n in defined and n not in self.extra_params:
                self.extra_params.append(n)
        return _layout(_Call(f"{self.p}.transform", [name, ("python", _Raw(_code_string(code)))]), "", "", "")

    def _assigned_names(self) -> set[str]:
        names: set[str] = set()
        for index, cell in enumerate(self.cells):
            if cell.get("cell_type") != "code" or index in self.found or _skipped(cell):
                continue
            try:
                tree = ast.parse(_without_magics(_source(cell)))
            except SyntaxError:
                continue
            names |= {
                n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
            }
        return names

    def _command(self, found: _Found, command: Command, dirty: bool) -> tuple[list[str], bool]:
        p, options = self.p, command.options
        text = self._text(found)
        if command.verb == "run":
            partial = bool(options.get("only") or options.get("from"))
            return self._run_lines(options, found.line), dirty if partial else False
        if command.verb == "dag":
            return [f"print({p}.dag().mermaid())"], dirty
        if command.verb == "show":
            prefix = [*self._run_lines(None, ""), ""] if dirty else []
            limit = options.get("limit", _DEFAULT_LIMIT)
            table = _flat(_Call(f"{p}.table", [text(command.target or "")]))
            shown = f"{table}.head({_flat(text(limit)) if isinstance(limit, str) else limit})"
            return [*prefix, f"print({shown})" if self.script else shown], False if dirty else dirty
        if command.verb == "reset":
            return [f"{p}.reset()"], dirty
        notes = {
            "runs": f"# %etl runs: see the recorded runs with `etl-nb runs --pipeline {self.name}`.",
            "params": "# %etl params: the parameters are the variables of the parameters cell.",
            "export": "# %etl export: this file is the export.",
        }
        return [notes[command.verb]], dirty

    def _run_lines(self, options: dict[str, Any] | None, line: str) -> list[str]:
        p, result = self.p, self.result
        args: list[_Arg] = []
        names = self._run_params()
        if names:
            args.append(("params", _Seq("{", "}", [(_Raw(_str_literal(n)), _Raw(n)) for n in names])))
        if options and options.get("only"):
            args.append(("only", _Seq("[", "]", [_Raw(_str_literal(s)) for s in options["only"]])))
        if options and options.get("from"):
            args.append(("from_step", _Raw(_str_literal(options["from"]))))
        return [
            *_layout(_Call(f"{p}.run", args), f"{result} = ", "", ""),
            f"{result}.raise_for_status()",
            f"print({result})",
        ]

    def _run_params(self) -> list[str]:
        names: list[str] = []
        for found in self._all_found():
            statement = found.statement
            if isinstance(statement, ExtractStep | TransformStep):
                names += [n for n in statement.parameters if n not in names]
        return names + [n for n in self.extra_params if n not in names]

    # --- values ---------------------------------------------------------------------------

    def _text(self, found: _Found) -> Callable[[Any], _Node]:
        """A field that came from the ``%etl`` line: a literal, or code for its ``{expr}`` expansions."""

        def convert(value: Any) -> _Node:
            if not isinstance(value, str) or not _PLACEHOLDER.search(value):
                return self._literal(value)
            return _Raw(_interpolated(value, found.expressions, self.literals))

        return convert

    def _options(self, options: dict[str, Any]) -> list[_Arg]:
        plain = [(k, self._literal(v)) for k, v in options.items() if k.isidentifier()]
        other = {k: v for k, v in options.items() if not k.isidentifier()}
        args: list[_Arg] = [(k, v) for k, v in plain]
        if other:
            args.append(_Raw("**" + _flat(self._literal(other))))
        return args

    def _literal(self, value: Any) -> _Node:
        if isinstance(value, str):
            return _Raw(_str_literal(value))
        if isinstance(value, bool) or value is None or isinstance(value, int | float):
            return _Raw(repr(value))
        if isinstance(value, dt.datetime | dt.date | dt.time):
            self.needs_dt = True
            return _Raw("dt." + repr(value).removeprefix("datetime."))
        if isinstance(value, list | tuple):
            return _Seq("[", "]", [self._literal(v) for v in value])
        if isinstance(value, dict):
            return _Seq("{", "}", [(self._literal(k), self._literal(v)) for k, v in value.items()])
        return _Raw(repr(value))


_IMPORT_ETL_NB = re.compile(r"^import etl_nb[ \t]*(\n[ \t]*)*(\n|\Z)", re.MULTILINE)
_UNKNOWN = object()


def _option(name: str) -> str:
    """The command-line option of a parameter: ``start_date`` → ``--start-date``."""
    return "--" + (name if name.startswith("_") else name.replace("_", "-"))


def _skipped(cell: Any) -> bool:
    return "injected-parameters" in cell.get("metadata", {}).get("tags", [])


def _source(cell: Any) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _has_load_ext(cell: Any) -> bool:
    return any(_LOAD_EXT.match(line) for line in _source(cell).split("\n"))


def _cell_error(index: int, message: str, step: str | None = None) -> SpecError:
    return SpecError(
        f"Cannot export: cell {index + 1}: {_one_line(message)} Nothing was written.", step=step, cell=index
    )


def _one_line(message: str) -> str:
    text = " ".join(message.split())
    return text if text.endswith((".", "?", "!")) else text + "."


def _culprit(spec: PipelineSpec, error: EtlError) -> int | None:
    """The cell of the step without which ``error`` goes away, else of the first step it names."""
    from etl_nb.notebook.reader import offending_step

    offender = offending_step(spec, error)
    if offender is not None:
        return offender.cell
    related = [s for s in spec.steps if error.step in (getattr(s, "name", None), getattr(s, "step", None))]
    return related[0].cell if related else None


def _free_name(choices: tuple[str, ...], taken: set[str]) -> str:
    return next((c for c in choices if c not in taken), choices[-1] + "_")


def _names_of(statement: Statement) -> list[str]:
    return [v for k in ("name", "source", "step", "to") if isinstance(v := getattr(statement, k, None), str)]


def _has_placeholder(values: list[str]) -> bool:
    return any(_PLACEHOLDER.search(v) for v in values)


def _literal_assignments(code: ast.Module) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for node in code.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                continue
    return found


def _without_magics(text: str) -> str:
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in text.split("\n"))


def _comment_magics(text: str) -> str:
    """IPython-only lines (``%magic``, ``!shell``) as comments: a script runs under plain Python."""
    if text.lstrip().startswith("%%"):
        return "\n".join(f"# {line}" if line else "#" for line in text.split("\n"))
    return "\n".join(re.sub(r"^(\s*)([%!].*)$", r"\1# \2  (IPython only)", line) for line in text.split("\n"))


def _interpolated(value: str, expressions: dict[int, str], literals: dict[str, Any]) -> str:
    """Code for a string with ``{expr}`` parts: the expression itself, or an f-string."""
    whole = _PLACEHOLDER.fullmatch(value)
    if whole is not None:
        expression = expressions[int(whole.group(1))]
        if _is_expression(expression):
            if expression.isidentifier() and isinstance(literals.get(expression), str):
                return expression
            return f"str({expression})"
    parts = _PLACEHOLDER.split(value)
    texts, exprs = parts[0::2], [expressions[int(n)] for n in parts[1::2]]
    quote = '"' if not any('"' in e for e in exprs) else "'"
    if any(quote in e or "\\" in e for e in exprs):
        pieces = [_str_literal(t) for t in texts]
        joined = [x for pair in zip(pieces, [f"str({e})" for e in exprs], strict=False) for x in pair]
        return " + ".join([*joined, pieces[-1]])
    out = []
    for i, text in enumerate(texts):
        out.append(_quote(text, quote)[1:-1].replace("{", "{{").replace("}", "}}"))
        if i < len(exprs):
            out.append("{" + exprs[i] + "}")
    return "f" + quote + "".join(out) + quote


def _is_expression(text: str) -> bool:
    try:
        ast.parse(text, mode="eval")
    except SyntaxError:
        return False
    return True


def _as_function(name: str, code: str, inputs: list[str], free: list[str]) -> list[str] | None:
    """A Python transform's code as ``def NAME(inputs): ...`` returning its last expression.

    None when a function would not run the code the same way: a name both read
    from outside and assigned, a multi-line string (indenting would change it),
    ``global``/``return``/``yield`` at the top, or no result to return.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    if not tree.body:
        return None
    bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    bound |= {
        (a.asname or a.name).split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    bound |= {
        n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }
    if bound & set(free):
        return None
    scoped = (ast.Global, ast.Nonlocal, ast.Return, ast.Yield, ast.YieldFrom, ast.Await)
    if any(isinstance(n, scoped) for stmt in tree.body for n in _walk_top(stmt)):
        return None
    if _multiline_tokens(code):
        return None
    lines = code.split("\n")
    last = tree.body[-1]
    if isinstance(last, ast.Expr):
        if last.col_offset != 0:
            return None
        row = last.lineno - 1
        lines[row] = "return " + lines[row]
    elif name in bound:
        lines.append(f"return {name}")
    else:
        return None
    body = [_INDENT + line if line.strip() else "" for line in lines]
    return [f"def {name}({', '.join(inputs)}):", *body]


def _walk_top(node: ast.AST) -> list[ast.AST]:
    """Nodes of ``node`` outside nested function and class bodies (whose returns are their own)."""
    found: list[ast.AST] = []
    stack = [node]
    while stack:
        current = stack.pop()
        found.append(current)
        if current is not node and isinstance(
            current, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef
        ):
            continue
        stack.extend(ast.iter_child_nodes(current))
    return found


def _multiline_tokens(code: str) -> bool:
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        return True
    skip = {tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    return any(t.start[0] != t.end[0] for t in tokens if t.type not in skip)


def _hoist_imports(text: str) -> tuple[str, list[str]]:
    """A script's top-level imports go to the top of the file (E402); returns the rest and the imports."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text, []
    lines = text.split("\n")
    hoisted: list[str] = []
    drop: set[int] = set()
    for node in tree.body:
        if not isinstance(node, ast.Import | ast.ImportFrom) or node.end_lineno is None:
            continue
        if isinstance(node, ast.Import):
            hoisted += [f"import {a.name}" + (f" as {a.asname}" if a.asname else "") for a in node.names]
        else:
            module = "." * node.level + (node.module or "")
            hoisted += [
                f"from {module} import {a.name}" + (f" as {a.asname}" if a.asname else "") for a in node.names
            ]
        drop |= set(range(node.lineno - 1, node.end_lineno))
    kept = [line for i, line in enumerate(lines) if i not in drop]
    return "\n".join(kept).strip("\n"), hoisted


def _sorted_imports(group: set[str]) -> list[str]:
    """isort's order: ``import x`` lines first, then ``from x import a, b`` merged per module."""
    straight = sorted((line for line in group if line.startswith("import ")), key=lambda s: s.lower())
    merged: dict[str, list[str]] = {}
    for line in group:
        if line.startswith("from "):
            module, names = line[5:].split(" import ", 1)
            merged.setdefault(module, []).append(names)
    froms = [
        f"from {module} import {', '.join(sorted(set(names), key=_member_order))}"
        for module, names in sorted(merged.items(), key=lambda kv: kv[0].lower())
    ]
    return straight + froms


def _member_order(name: str) -> tuple[int, str]:
    bare = name.split(" as ", maxsplit=1)[0]
    kind = 0 if bare.isupper() and len(bare) > 1 else 1 if bare[:1].isupper() else 2
    return kind, bare.lower()


# --------------------------------------------------------------------------------------
# Joining a script
# --------------------------------------------------------------------------------------


def _join_script(plan: _Plan, source_name: str) -> str:
    simple = {
        n: v
        for n, v in plan.parameters.items()
        if isinstance(v, str | int | float) and not isinstance(v, bool) and n in plan.parameter_names
    }
    script = f"{Path(source_name).stem}.py"
    example = f"    python {script}"
    for n, v in simple.items():  # as many as fit on the line; --help lists them all
        option = f" {_option(n)} {shlex.quote(str(v))}"
        if v == "" or len(example + option) > LINE_LENGTH:
            break
        example += option
    usage = [example]
    if plan.parameter_names:
        usage.append(f"    python {script} --help")
    how = "; the notebook's parameters are command-line options:" if plan.parameter_names else ":"
    docstring = [
        f'"""The {Path(source_name).stem} pipeline, exported from {source_name} by `etl-nb export`.',
        "",
        f"Run it with plain Python{how}",
        "",
        *usage,
        '"""',
    ]
    out = [*docstring, "", *plan.imports]
    pending: list[str] = []
    for chunk in plan.chunks:
        if chunk.kind == "markdown":
            if pending:
                pending.append("#")
            pending += _markdown_comment(chunk.text)
            continue
        code = chunk.text.split("\n")
        starts_def = bool(code) and code[0].startswith(("def ", "class ", "async def ", "@"))
        after_def = _ends_with_def(out)
        out += ["", ""] if starts_def or after_def else [""]
        out += pending + code
        pending = []
    if pending:
        out += ["", *pending]
    return "\n".join(out).rstrip("\n") + "\n"


def _ends_with_def(lines: list[str]) -> bool:
    """Whether the last top-level statement written is a function or class (two blank lines follow it)."""
    for line in reversed(lines):
        if not line or line.startswith((" ", "\t", ")", "]", "}")):
            continue
        return line.startswith(("def ", "class ", "async def ", "@"))
    return False


def _markdown_comment(text: str) -> list[str]:
    width = LINE_LENGTH - 2
    out: list[str] = []
    fenced = False
    for raw in text.split("\n"):
        line = raw.rstrip()
        if line.startswith("```"):
            fenced = not fenced
        if not line:
            out.append("#")
        elif fenced or line.startswith(("    ", "|")) or len(line) <= width:
            out.append(f"# {line}")
        else:
            bullet = re.match(r"(\s*(?:[-*+]|\d+\.)\s+)", line)
            hang = " " * len(bullet.group(1)) if bullet else ""
            wrapped = textwrap.wrap(
                line, width, subsequent_indent=hang, break_long_words=False, break_on_hyphens=False
            )
            out += [f"# {w}" for w in wrapped]
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


def _write_atomically(target: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as file:
            file.write(text)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------
# Literals and layout: code as `ruff format` would write it
# --------------------------------------------------------------------------------------


@dataclass
class _Raw:
    """Code that is never split (a name, a literal, a triple-quoted string)."""

    text: str


@dataclass
class _Call:
    func: str
    args: list[_Arg]


@dataclass
class _Seq:
    open: str
    close: str
    items: list[_Node | tuple[_Node, _Node]]


_Node = _Raw | _Call | _Seq
_Arg = _Node | tuple[str, _Node]


def _quote(text: str, quote: str) -> str:
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif char == quote:
            out.append("\\" + quote)
        elif char in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[char])
        elif not char.isprintable():
            out.append(repr(char)[1:-1])
        else:
            out.append(char)
    return quote + "".join(out) + quote


def _str_literal(text: str) -> str:
    """A string literal in ruff's preferred quotes (double, unless that needs more escapes)."""
    return _quote(text, '"' if text.count('"') <= text.count("'") else "'")


def _code_string(text: str) -> str:
    """SQL or code as a string: one line as is, several lines triple-quoted on lines of their own."""
    if "\n" not in text:
        return _str_literal(text)
    raw = "\\" in text and '"""' not in text and not text.endswith("\\")
    body = text if raw else text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    body = body.replace("\r", "\\r") if not raw else body
    return ("r" if raw else "") + '"""\n' + body + '\n"""'


def _flat(node: _Node | tuple[str, _Node]) -> str:
    if isinstance(node, tuple):
        return f"{node[0]}={_flat(node[1])}"
    if isinstance(node, _Raw):
        return node.text
    if isinstance(node, _Call):
        return f"{node.func}({', '.join(_flat(a) for a in node.args)})"
    return node.open + ", ".join(_flat_item(i) for i in node.items) + node.close


def _flat_item(item: _Node | tuple[_Node, _Node]) -> str:
    if isinstance(item, tuple):
        return f"{_flat(item[0])}: {_flat(item[1])}"
    return _flat(item)


def _fits(indent: str, text: str) -> bool:
    return "\n" not in text and len(indent) + len(text) <= LINE_LENGTH


def _layout(node: _Node, prefix: str, suffix: str, indent: str) -> list[str]:
    """Lines for ``prefix + node + suffix`` at ``indent``, split the way ruff format splits them.

    Flat if it fits; else a call's arguments go on one indented line if they
    fit there, and otherwise one per line with a trailing comma, each laid out
    in turn. A collection with several items always goes one item per line.
    """
    flat = prefix + _flat(node) + suffix
    if _fits(indent, flat) or isinstance(node, _Raw):
        return [indent + line if i == 0 else line for i, line in enumerate(flat.split("\n"))]
    if isinstance(node, _Call):
        opener, closer = node.func + "(", ")"
        items: list[tuple[str, _Node]] = [
            (f"{a[0]}=", a[1]) if isinstance(a, tuple) else ("", a) for a in node.args
        ]
    else:
        opener, closer = node.open, node.close
        items = [(f"{_flat(i[0])}: ", i[1]) if isinstance(i, tuple) else ("", i) for i in node.items]
    inner = indent + _INDENT
    head, tail = indent + prefix + opener, indent + closer + suffix
    if not items:
        return [indent + flat]
    body = ", ".join(p + _flat(n) for p, n in items)
    if (isinstance(node, _Call) or len(items) == 1) and _fits(inner, body):
        return [head, inner + body, tail]
    if len(items) == 1:
        return [head, *_layout(items[0][1], items[0][0], "", inner), tail]
    lines = [head]
    for item_prefix, item in items:
        lines += _layout(item, item_prefix, ",", inner)
    return [*lines, tail]


# --------------------------------------------------------------------------------------
# The way back: API calls in a code cell → statements (for the notebook reader)
# --------------------------------------------------------------------------------------

_API_VERBS = ("connect", "extract", "transform", "check", "load")


def api_statements(
    code: ast.Module, source: str, cell: int, literals: dict[str, Any], state: dict[str, Any]
) -> list[tuple[str, Statement | None, str | None]]:
    """The pipeline statements a code cell makes through the Python API, as ``etl-nb export`` writes them.

    Finds ``p = Pipeline(...)`` (remembered in ``state`` for later cells) and
    top-level ``p.connect / extract / transform / check / load / run(...)``
    calls whose arguments are literals, names with literal values in
    ``literals``, f-strings of those, or (for ``python=``) a function defined
    in the cell. Returns ``(code text, statement, None)`` or ``(code text,
    None, problem)`` per call, in order. Never runs notebook code.
    """
    pipelines: set[str] = state.setdefault("pipelines", set())
    functions: dict[str, str] = {}
    found: list[tuple[str, Statement | None, str | None]] = []
    for node in code.body:
        if isinstance(node, ast.FunctionDef):
            functions[node.name] = _function_code(node, source)
            continue
        call = node.value if isinstance(node, ast.Expr | ast.Assign) else None
        if isinstance(node, ast.Assign) and _is_pipeline_call(call):
            pipelines.update(t.id for t in node.targets if isinstance(t, ast.Name))
            continue
        if not (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and isinstance(call.func.value, ast.Name)
            and call.func.value.id in pipelines
            and call.func.attr in (*_API_VERBS, "run")
        ):
            continue
        text = ast.get_source_segment(source, call) or call.func.attr
        try:
            found.append((text, _api_statement(call, cell, literals, functions), None))
        except (EtlError, _Unknown, TypeError, ValueError) as exc:
            message = exc.message if isinstance(exc, EtlError) else str(exc)
            found.append((text, None, message))
    return found


class _Unknown(Exception):
    pass


_DATE_TYPES: dict[str, Callable[..., Any]] = {
    "dt.date": dt.date,
    "dt.datetime": dt.datetime,
    "dt.time": dt.time,
    "dt.timedelta": dt.timedelta,
}


def _is_pipeline_call(node: ast.expr | None) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (isinstance(func, ast.Name) and func.id == "Pipeline") or (
        isinstance(func, ast.Attribute) and func.attr == "Pipeline"
    )


def _function_code(node: ast.FunctionDef, source: str) -> str:
    """A transform function's body as the cell code it came from: ``return X`` back to ``X``."""
    lines = source.split("\n")
    first, last = node.body[0], node.body[-1]
    end = last.end_lineno or last.lineno
    body = textwrap.dedent("\n".join(lines[first.lineno - 1 : end]))
    if isinstance(last, ast.Return) and last.value is not None:
        rows = body.split("\n")
        row = last.lineno - first.lineno
        rows[row] = re.sub(r"^(\s*)return\s+", r"\1", rows[row], count=1)
        if rows[row].strip() == node.name and row == len(rows) - 1:
            rows.pop()  # `return NAME` after assigning NAME: the engine reads NAME itself
        body = "\n".join(rows)
    return body.strip("\n")


def _api_statement(
    call: ast.Call, cell: int, literals: dict[str, Any], functions: dict[str, str]
) -> Statement:
    from etl_nb.pipeline import Pipeline

    assert isinstance(call.func, ast.Attribute)
    verb = call.func.attr
    if verb == "run":  # its params are the notebook's variables: only the step selection matters here
        options: dict[str, Any] = {}
        for keyword in call.keywords:
            if keyword.arg in ("only", "from_step"):
                value = _value(keyword.value, literals, functions)
                options["only" if keyword.arg == "only" else "from"] = (
                    list(value) if keyword.arg == "only" else value
                )
        return Command(verb="run", options=options)
    args = [_value(a, literals, functions) for a in call.args]
    kwargs = {k.arg: _value(k.value, literals, functions) for k in call.keywords if k.arg is not None}
    for k in call.keywords:
        if k.arg is None:
            extra = _value(k.value, literals, functions)
            if not isinstance(extra, dict):
                raise _Unknown("**options must be a dict literal")
            kwargs.update(extra)
    # The export puts code on lines of its own inside triple quotes; the grammar strips those newlines.
    args = [a.strip("\n") if isinstance(a, str) else a for a in args]
    for key in ("query", "sql", "python"):
        if isinstance(kwargs.get(key), str):
            kwargs[key] = kwargs[key].strip("\n")
    scratch = Pipeline("export_reader", base_dir=".")
    getattr(scratch, verb)(*args, **kwargs)
    spec = scratch.spec
    statement: ConnectionSpec | Step = (
        next(iter(spec.connections.values())) if verb == "connect" else spec.steps[-1]
    )
    return statement.model_copy(update={"cell": cell})


def _value(node: ast.expr, literals: dict[str, Any], functions: dict[str, str]) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {
            _value(k, literals, functions): _value(v, literals, functions)
            for k, v in zip(node.keys, node.values, strict=True)
            if k is not None
        }
    if isinstance(node, ast.List | ast.Tuple):
        return [_value(e, literals, functions) for e in node.elts]
    if isinstance(node, ast.Name):
        if node.id in functions:
            return functions[node.id]
        if node.id in literals:
            return literals[node.id]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "str"
        and len(node.args) == 1
    ):
        return str(_value(node.args[0], literals, functions))
    if isinstance(node, ast.JoinedStr):
        parts = []
        for part in node.values:
            if isinstance(part, ast.Constant):
                parts.append(str(part.value))
            elif isinstance(part, ast.FormattedValue) and part.conversion == -1 and part.format_spec is None:
                parts.append(str(_value(part.value, literals, functions)))
            else:
                raise _Unknown("an f-string with a format the reader cannot follow")
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _value(node.left, literals, functions) + _value(node.right, literals, functions)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and ast.unparse(node.func) in _DATE_TYPES
        and not node.keywords
    ):  # dates in YAML bodies are written as dt.date(2026, 1, 1)
        return _DATE_TYPES[ast.unparse(node.func)](*(_value(a, literals, functions) for a in node.args))
    text = ast.unparse(node)
    raise _Unknown(
        f"'{text}' is only known when the notebook runs; the reader needs a literal or a name "
        "assigned a literal in the parameters cell."
    )
