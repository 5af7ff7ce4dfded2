"""Step fingerprints: what a step's output depends on, as data, and why two of them differ.

A fingerprint has five parts, each kept apart so that a change can be named:

- ``code``: the step's normalised code. SQL is parsed by DuckDB
  (``json_serialize_sql``, positions dropped), so whitespace, comments and
  keyword case do not count; Python is its ``ast`` dump, so comments and
  layout do not count either.
- ``options``: everything else the step declares (paths, formats, paging,
  check rules, a load's target and mode), ``cache_ttl`` excepted.
- ``params``: the values of the parameters the step reads.
- ``connection``: a digest of the connection as declared (type, URL, options)
  with its ``${VAR}`` references unresolved: a resolved secret never enters.
- ``inputs``: the fingerprints of upstream steps, and for a files extract each
  matching file's size and modification time (or the high-water mark of an
  incremental extract).

Code, options and the connection are kept as digests (a literal token in a
body is not copied into the run store); parameter values and file stats are
kept as they are, so that the reason can say what changed. Everything here is
pure: the caller gathers file stats and upstream digests.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from etl_nb.engine.dag import bindable_sql, python_free_names, sql_tree
from etl_nb.errors import SpecError
from etl_nb.spec import CheckStep, ConnectionSpec, ExtractStep, LoadStep, Step, TransformStep

# Fields that are the step's code or identity, not its options.
_NOT_OPTIONS = {"cell", "query", "sql", "python", "function", "cache_ttl", "name", "verb"}


@dataclass(frozen=True)
class Fingerprint:
    """One step's fingerprint: its parts, and their digest."""

    step: str
    parts: dict[str, Any]

    @property
    def digest(self) -> str:
        """A short stable digest of every part."""
        return _digest(self.parts)[:32]


def step_fingerprint(
    node: str,
    step: Step,
    *,
    connection: ConnectionSpec | None,
    params: Mapping[str, Any],
    upstream: Mapping[str, str],
    files: Mapping[str, tuple[int, int]] | None = None,
    since: Any = None,
) -> Fingerprint:
    """The fingerprint of ``step`` (DAG node ``node``).

    ``connection`` is the connection it reads or writes, ``params`` every
    parameter value of the run (only those the step reads are taken),
    ``upstream`` the digests of the steps it reads, ``files`` the
    ``{path: (size, mtime_ns)}`` of a files extract, ``since`` an incremental
    extract's high-water mark.
    """
    inputs: dict[str, Any] = {"upstream": dict(sorted(upstream.items()))}
    if files is not None:
        inputs["files"] = {path: list(stat) for path, stat in sorted(files.items())}
    if since is not None:
        inputs["since"] = _plain(since)
    parts = {
        "code": _digest(normalised_code(step)),
        "options": _digest(step.model_dump(exclude=_NOT_OPTIONS, mode="json")),
        "params": {name: _plain(params[name]) for name in parameters_read(step, params) if name in params},
        "connection": None if connection is None else connection_identity(connection),
        "inputs": inputs,
    }
    return Fingerprint(node, parts)


def connection_identity(connection: ConnectionSpec) -> str:
    """A digest of the connection as declared: ``${VAR}`` stays a reference, never its value."""
    return _digest(connection.model_dump(include={"type", "url", "options"}, mode="json"))


def parameters_read(step: Step, params: Mapping[str, Any]) -> list[str]:
    """The parameters ``step`` reads: its ``{{ name }}`` uses, or a Python step's free names."""
    if isinstance(step, ExtractStep | CheckStep):
        return step.parameters
    if isinstance(step, TransformStep):
        if step.python is not None:
            return [n for n in _safe_free_names(step.python, step.name) if n in params]
        return step.parameters
    return []


def normalised_code(step: Step) -> str:
    """The step's code with whitespace, comments and layout taken out."""
    if isinstance(step, TransformStep):
        if step.sql is not None:
            return normalised_sql(step.sql)
        if step.python is not None:
            return normalised_python(step.python)
        return _function_code(step.function)
    if isinstance(step, ExtractStep):
        # An extract's SQL is in its source's dialect: DuckDB may not parse it (then its words count).
        return normalised_sql(step.query) if step.query is not None else ""
    if isinstance(step, CheckStep):
        return json.dumps([r.expression and normalised_sql(f"SELECT {r.expression}") for r in step.rules])
    assert isinstance(step, LoadStep)
    return ""


def normalised_sql(sql: str) -> str:
    """DuckDB's parse tree of ``sql`` without source positions; its words when it does not parse."""
    tree = sql_tree(bindable_sql(sql))
    if tree.get("error"):
        return " ".join(_without_comments(sql).split())
    return json.dumps(_strip_positions(tree.get("statements", [])), sort_keys=True)


def normalised_python(code: str) -> str:
    """The ``ast`` dump of ``code`` (comments and layout do not count); the text if it does not parse."""
    try:
        return ast.dump(ast.parse(textwrap.dedent(code)))
    except SyntaxError:
        return code


def _function_code(function: Any) -> str:
    try:
        return normalised_python(inspect.getsource(function))
    except (OSError, TypeError):  # defined where no source is kept (a REPL line, say)
        code = getattr(function, "__code__", None)
        return repr((code.co_code, code.co_consts)) if code is not None else repr(function)


def _safe_free_names(code: str, step: str) -> list[str]:
    try:
        return python_free_names(code, step)
    except SpecError:  # a syntax error: the step itself says so when it runs
        return []


def _strip_positions(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: _strip_positions(v)
            for k, v in node.items()
            if k not in ("query_location", "query_location_length")
        }
    if isinstance(node, list):
        return [_strip_positions(v) for v in node]
    return node


def _without_comments(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines())


def _plain(value: Any) -> Any:
    """``value`` as JSON: numbers, booleans and None as they are, anything else as its text."""
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def _digest(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# --- why a fingerprint differs from the last one -------------------------------------------


def difference(new: Fingerprint, old: Mapping[str, Any] | None) -> str | None:
    """Why ``new`` differs from ``old`` (an earlier fingerprint's parts), leaving upstream steps aside.

    None when nothing of the step's own changed. The reason is the first
    change in this order: code, options, connection, a parameter, a file, the
    high-water mark.
    """
    if old is None:
        return "first run"
    parts = new.parts
    if parts["code"] != old.get("code"):
        return "code changed"
    if parts["options"] != old.get("options"):
        return "options changed"
    if parts["connection"] != old.get("connection"):
        return "connection changed"
    before: dict[str, Any] = old.get("params") or {}
    for name, value in parts["params"].items():
        if name not in before:
            return f"parameter {name} is new"
        if before[name] != value:
            return f"parameter {name} changed ({_shown(before[name])} → {_shown(value)})"
    inputs, old_inputs = parts["inputs"], old.get("inputs") or {}
    files, old_files = inputs.get("files"), old_inputs.get("files")
    if files is not None:
        return _file_change(files, old_files or {}) or _since_change(inputs, old_inputs)
    return _since_change(inputs, old_inputs)


def _file_change(files: Mapping[str, Any], old: Mapping[str, Any]) -> str | None:
    for path, stat in files.items():
        if path not in old:
            return f"{path} is new"
        if list(old[path]) != list(stat):
            return f"{path} changed"
    gone = sorted(set(old) - set(files))
    return f"{gone[0]} is gone" if gone else None


def _since_change(inputs: Mapping[str, Any], old: Mapping[str, Any]) -> str | None:
    if inputs.get("since") != old.get("since"):
        return "high-water mark moved"
    return None


def _shown(value: Any) -> str:
    return "none" if value is None else str(value)
