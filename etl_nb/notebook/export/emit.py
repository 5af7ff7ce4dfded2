"""The code emitter: each ``%etl`` statement as calls on the Python API.

One writer function per statement kind, chosen from ``WRITERS`` by the
statement's verb. To export a new kind of statement, write its function here
and add it to ``WRITERS``. The ``Emitter`` holds what every writer shares:
the generated names (``p``, ``result``), what the notebook declares, and what
the code written so far needs (imports, a run before a step's output is read).
"""

from __future__ import annotations

import ast
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from etl_nb._yaml import load_yaml_body
from etl_nb.engine.dag import python_free_names
from etl_nb.notebook.export.layout import (
    Arg,
    Call,
    Node,
    Raw,
    Seq,
    code_string,
    flat,
    layout,
    quote,
    str_literal,
)
from etl_nb.notebook.export.rewrite import as_function
from etl_nb.spec import (
    DEFAULT_LOAD_MODE,
    CheckStep,
    Command,
    ConnectionSpec,
    ExtractStep,
    LoadStep,
    Statement,
    TransformStep,
    infer_connection_type,
)

__all__ = ["PLACEHOLDER", "WRITERS", "Emitter", "Found", "has_placeholder", "kind_of", "option_name"]

# What a {expr} field of a %etl line becomes while its statement is parsed: `_etlnb_x0_`, `_etlnb_x1_` ...
PLACEHOLDER = re.compile(r"_etlnb_x(\d+)_")
_DEFAULT_LIMIT = 10


@dataclass
class Found:
    """One ``%etl`` statement of the notebook, parsed with its ``{expr}`` fields as placeholders."""

    cell: int
    line: str
    body: str | None
    statement: Statement
    expressions: dict[int, str]


def kind_of(statement: Statement) -> str:
    """The key of a statement's writer in ``WRITERS``: its verb (``connect`` for a connection)."""
    return "connect" if isinstance(statement, ConnectionSpec) else statement.verb


def has_placeholder(values: list[str]) -> bool:
    """Whether any of ``values`` holds a ``{expr}`` field (known only when the notebook runs)."""
    return any(PLACEHOLDER.search(v) for v in values)


def option_name(name: str) -> str:
    """The command-line option of a parameter: ``start_date`` → ``--start-date``."""
    return "--" + (name if name.startswith("_") else name.replace("_", "-"))


@dataclass
class Emitter:
    """The context the writers share, and what the code written so far has left to do.

    ``dirty`` is True while steps are declared that no ``p.run()`` written yet
    has run; ``needs_pl``/``needs_dt`` ask for imports; ``extra_params`` are
    notebook variables that Python transforms kept as code strings read.
    """

    name: str
    p: str
    result: str
    script: bool
    tables: set[str]
    literals: dict[str, Any]
    defined: set[str]  # names the notebook's code assigns: a string transform may read them
    statement_params: list[str]  # {{ name }} parameters of the extracts and transforms, in order
    dirty: bool = False
    needs_pl: bool = False
    needs_dt: bool = False
    extra_params: list[str] = field(default_factory=list)

    def emit(self, found: Found, indent: str = "") -> list[str]:
        """The code for one statement, at ``indent``."""
        lines = WRITERS[kind_of(found.statement)](self, found)
        if not isinstance(found.statement, Command):
            self.dirty = True
        return [indent + line if line else line for line in lines]

    def run_lines(self, options: dict[str, Any] | None = None) -> list[str]:
        """``result = p.run(params={...})``, its status check and its summary."""
        args: list[Arg] = []
        names = self.statement_params + [n for n in self.extra_params if n not in self.statement_params]
        if names:
            args.append(("params", Seq("{", "}", [(Raw(str_literal(n)), Raw(n)) for n in names])))
        if options and options.get("only"):
            args.append(("only", Seq("[", "]", [Raw(str_literal(s)) for s in options["only"]])))
        if options and options.get("from"):
            args.append(("from_step", Raw(str_literal(options["from"]))))
        return [
            *layout(Call(f"{self.p}.run", args), f"{self.result} = "),
            f"{self.result}.raise_for_status()",
            f"print({self.result})",
        ]

    def setup_lines(self, base_dir: str) -> list[str]:
        """``p = Pipeline(...)`` (with its imports in a notebook; a script hoists them)."""
        lines: list[str] = []
        if self.script:
            directory = "Path(__file__).parent"
            if base_dir not in (".", ""):
                directory += f" / {str_literal(base_dir)}"
            args: list[Arg] = [Raw(str_literal(self.name)), ("base_dir", Raw(directory))]
        else:
            imports = ["import datetime as dt"] if self.needs_dt else []
            imports += ["import polars as pl"] if self.needs_pl else []
            lines = [*imports, *([""] if imports else []), "from etl_nb import Pipeline", ""]
            args = [Raw(str_literal(self.name))]
            if base_dir not in (".", ""):
                args.append(("base_dir", Raw(str_literal(base_dir))))
        return lines + layout(Call("Pipeline", args), f"{self.p} = ")

    def argparse_lines(self, names: list[str], defaults: dict[str, Any], parser: str, args: str) -> list[str]:
        """A script's command-line options for the parameters, defaulting to the parameters cell."""
        description = ("description", Raw(str_literal(f"Run the {self.name} pipeline.")))
        lines = [
            "# The parameters above are the defaults; options on the command line override them.",
            *layout(Call("argparse.ArgumentParser", [description]), f"{parser} = "),
        ]
        for name in names:
            call_args: list[Arg] = [Raw(str_literal(option_name(name)))]
            value = defaults.get(name)
            if isinstance(value, bool):
                call_args.append(("action", Raw("argparse.BooleanOptionalAction")))
            elif isinstance(value, int | float):
                call_args.append(("type", Raw(type(value).__name__)))
            elif isinstance(value, list | dict):
                call_args.append(("type", Raw("json.loads")))
            call_args.append(("default", Raw(name)))
            lines += layout(Call(f"{parser}.add_argument", call_args))
        lines.append(f"{args} = {parser}.parse_args()")
        lines += [f"{name} = {args}.{name}" for name in names]
        return lines

    # --- values ---------------------------------------------------------------------------

    def text(self, found: Found) -> Callable[[Any], Node]:
        """A field that came from the ``%etl`` line: a literal, or code for its ``{expr}`` fields."""

        def convert(value: Any) -> Node:
            if not isinstance(value, str) or not PLACEHOLDER.search(value):
                return self.literal(value)
            return Raw(_interpolated(value, found.expressions, self.literals))

        return convert

    def options(self, options: dict[str, Any]) -> list[Arg]:
        """Keyword arguments for ``options``; keys that are not identifiers go in a ``**{...}``."""
        args: list[Arg] = [(k, self.literal(v)) for k, v in options.items() if k.isidentifier()]
        other = {k: v for k, v in options.items() if not k.isidentifier()}
        if other:
            args.append(Raw("**" + flat(self.literal(other))))
        return args

    def literal(self, value: Any) -> Node:
        """``value`` as a Python literal (dates as ``dt.date(...)``)."""
        if isinstance(value, str):
            return Raw(str_literal(value))
        if isinstance(value, bool) or value is None or isinstance(value, int | float):
            return Raw(repr(value))
        if isinstance(value, dt.datetime | dt.date | dt.time):
            self.needs_dt = True
            return Raw("dt." + repr(value).removeprefix("datetime."))
        if isinstance(value, list | tuple):
            return Seq("[", "]", [self.literal(v) for v in value])
        if isinstance(value, dict):
            return Seq("{", "}", [(self.literal(k), self.literal(v)) for k, v in value.items()])
        return Raw(repr(value))


Writer = Callable[[Emitter, Found], list[str]]


# --------------------------------------------------------------------------------------
# Declarations: one call on the pipeline each
# --------------------------------------------------------------------------------------


def _connect(em: Emitter, found: Found) -> list[str]:
    statement = found.statement
    assert isinstance(statement, ConnectionSpec)
    text = em.text(found)
    args: list[Arg] = [text(statement.name), text(statement.url)]
    if statement.type != infer_connection_type(statement.url):
        args.append(("type", em.literal(statement.type)))
    args += em.options(statement.options)
    return layout(Call(f"{em.p}.connect", args))


def _extract(em: Emitter, found: Found) -> list[str]:
    statement = found.statement
    assert isinstance(statement, ExtractStep)
    text = em.text(found)
    args: list[Arg] = [text(statement.name), ("source", text(statement.source))]
    if statement.query is not None:
        args.append(("query", Raw(code_string(statement.query))))
    for key in ("path", "format", "options", "params", "records", "paginate"):
        value = getattr(statement, key)
        if value not in (None, {}):
            args.append((key, text(value) if key == "path" else em.literal(value)))
    if statement.incremental:
        args.append(("incremental", text(statement.incremental)))
    if statement.on_drift != "warn":
        args.append(("on_drift", text(statement.on_drift)))
    if statement.cache_ttl:
        args.append(("cache_ttl", text(statement.cache_ttl)))
    return layout(Call(f"{em.p}.extract", args))


def _transform(em: Emitter, found: Found) -> list[str]:
    """SQL as text; Python as a function named after the step, or as a string if a function would differ."""
    step = found.statement
    assert isinstance(step, TransformStep)
    name = em.text(found)(step.name)
    if step.sql is not None:
        return layout(Call(f"{em.p}.transform", [name, ("sql", Raw(code_string(step.sql)))]))
    code = step.python or ""
    free = python_free_names(code, step.name)
    inputs = [n for n in free if n in em.tables and n != step.name]
    function = as_function(step.name, code, inputs, free)
    if function is not None and not has_placeholder([step.name]):
        em.needs_pl = em.needs_pl or "pl" in free
        call = Call(f"{em.p}.transform", [name, ("python", Raw(step.name))])
        return [*function, "", "", *layout(call)]
    for n in free:
        if n not in em.tables and n != "pl" and n in em.defined and n not in em.extra_params:
            em.extra_params.append(n)
    return layout(Call(f"{em.p}.transform", [name, ("python", Raw(code_string(code)))]))


def _check(em: Emitter, found: Found) -> list[str]:
    statement = found.statement
    assert isinstance(statement, CheckStep)
    rules = load_yaml_body(found.body or "")  # the rules as written, not as parsed into CheckRule
    args: list[Arg] = [em.text(found)(statement.step), em.literal(rules)]
    if statement.warn:
        args.append(("warn", Raw("True")))
    return layout(Call(f"{em.p}.check", args))


def _load(em: Emitter, found: Found) -> list[str]:
    statement = found.statement
    assert isinstance(statement, LoadStep)
    text = em.text(found)
    args: list[Arg] = [text(statement.step), ("to", text(statement.to))]
    args.append(("table", text(statement.table)) if statement.table else ("path", text(statement.path)))
    if statement.mode != DEFAULT_LOAD_MODE:
        args.append(("mode", text(statement.mode)))
    if statement.key:
        keys = statement.key
        args.append(("key", text(keys[0]) if len(keys) == 1 else Seq("[", "]", [text(k) for k in keys])))
    if statement.dry_run:
        args.append(("dry_run", Raw("True")))
    return layout(Call(f"{em.p}.load", args))


# --------------------------------------------------------------------------------------
# Commands: what the line commands do in a script
# --------------------------------------------------------------------------------------


def _command(found: Found) -> Command:
    assert isinstance(found.statement, Command)
    return found.statement


def _run(em: Emitter, found: Found) -> list[str]:
    options = _command(found).options
    if not (options.get("only") or options.get("from")):  # a partial run leaves the other steps unrun
        em.dirty = False
    return em.run_lines(options)


def _dag(em: Emitter, found: Found) -> list[str]:
    return [f"print({em.p}.dag().mermaid())"]


def _show(em: Emitter, found: Found) -> list[str]:
    """A step's first rows; the steps declared so far run first, as the notebook's cells had."""
    command = _command(found)
    prefix = [*em.run_lines(), ""] if em.dirty else []
    em.dirty = False
    limit = command.options.get("limit", _DEFAULT_LIMIT)
    table = flat(Call(f"{em.p}.table", [em.text(found)(command.target or "")]))
    shown = f"{table}.head({flat(em.text(found)(limit)) if isinstance(limit, str) else limit})"
    return [*prefix, f"print({shown})" if em.script else shown]


def _reset(em: Emitter, found: Found) -> list[str]:
    return [f"{em.p}.reset()"]


def _note(em: Emitter, found: Found) -> list[str]:
    """Commands that only make sense in a notebook become a comment saying where to look instead."""
    notes = {
        "runs": f"# %etl runs: see the recorded runs with `etl-nb runs --pipeline {em.name}`.",
        "params": "# %etl params: the parameters are the variables of the parameters cell.",
        "export": "# %etl export: this file is the export.",
    }
    return [notes[_command(found).verb]]


WRITERS: dict[str, Writer] = {
    "connect": _connect,
    "extract": _extract,
    "transform": _transform,
    "check": _check,
    "load": _load,
    "run": _run,
    "dag": _dag,
    "show": _show,
    "reset": _reset,
    "runs": _note,
    "params": _note,
    "export": _note,
}


# --------------------------------------------------------------------------------------
# {expr} fields as code
# --------------------------------------------------------------------------------------


def _interpolated(value: str, expressions: dict[int, str], literals: dict[str, Any]) -> str:
    """Code for a string with ``{expr}`` parts: the expression itself, or an f-string."""
    whole = PLACEHOLDER.fullmatch(value)
    if whole is not None:
        expression = expressions[int(whole.group(1))]
        if _is_expression(expression):
            if expression.isidentifier() and isinstance(literals.get(expression), str):
                return expression
            return f"str({expression})"
    parts = PLACEHOLDER.split(value)
    texts, exprs = parts[0::2], [expressions[int(n)] for n in parts[1::2]]
    mark = '"' if not any('"' in e for e in exprs) else "'"
    if any(mark in e or "\\" in e for e in exprs):
        pieces = [str_literal(t) for t in texts]
        joined = [x for pair in zip(pieces, [f"str({e})" for e in exprs], strict=False) for x in pair]
        return " + ".join([*joined, pieces[-1]])
    out = []
    for i, text in enumerate(texts):
        out.append(quote(text, mark)[1:-1].replace("{", "{{").replace("}", "}}"))
        if i < len(exprs):
            out.append("{" + exprs[i] + "}")
    return "f" + mark + "".join(out) + mark


def _is_expression(text: str) -> bool:
    try:
        ast.parse(text, mode="eval")
    except SyntaxError:
        return False
    return True
