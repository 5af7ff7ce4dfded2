"""Pipeline API calls in a code cell → statements: how the reader sees an exported notebook.

``etl-nb export`` writes ``p = Pipeline(...)`` and one ``p.connect / extract /
transform / check / load / run(...)`` call per statement. ``api_statements``
reads those calls back, without running anything, so an exported notebook
reads back (in the panel, in ``etl-nb run``) as the pipeline it came from.
"""

from __future__ import annotations

import ast
import datetime as dt
import re
import textwrap
from collections.abc import Callable
from typing import Any

from etl_nb.errors import EtlError
from etl_nb.pipeline import Pipeline
from etl_nb.spec import Command, ConnectionSpec, Statement, Step

__all__ = ["api_statements"]

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
