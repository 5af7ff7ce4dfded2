"""The pipeline as a graph: dependencies inferred from SQL and Python, never declared.

A SQL transform depends on the tables its SQL reads (found with DuckDB's own
parser, so ``JOIN ... USING``, CTEs, subqueries and quoted names are read
as DuckDB reads them). A Python transform depends on the free names in its
code that are step names. Checks follow their step; loads follow their step
and its checks.
"""

from __future__ import annotations

import ast
import builtins
import graphlib
import heapq
import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from inspect import signature
from typing import Any

import duckdb

from etl_nb.errors import PipelineError, SpecError, did_you_mean
from etl_nb.spec import (
    PARAMETER,
    CheckStep,
    ExtractStep,
    LoadStep,
    PipelineSpec,
    Step,
    TransformStep,
)

_parser_lock = threading.Lock()
_parser: duckdb.DuckDBPyConnection | None = None


@dataclass(frozen=True)
class Dag:
    """Steps by node id, the edges between them, and a run order."""

    nodes: dict[str, Step]
    edges: list[tuple[str, str]] = field(default_factory=list)

    def upstream(self, node: str) -> list[str]:
        """The nodes ``node`` reads from."""
        return [a for a, b in self.edges if b == node]

    def downstream(self, node: str) -> list[str]:
        """The nodes that read ``node``."""
        return [b for a, b in self.edges if a == node]

    def order(self) -> list[str]:
        """Node ids in an order that runs each after its inputs; ties keep declaration order."""
        position = {node: i for i, node in enumerate(self.nodes)}
        waiting = {node: len(set(self.upstream(node))) for node in self.nodes}
        ready = [(position[n], n) for n, count in waiting.items() if count == 0]
        heapq.heapify(ready)
        order: list[str] = []
        while ready:
            _, node = heapq.heappop(ready)
            order.append(node)
            for after in dict.fromkeys(self.downstream(node)):
                waiting[after] -= 1
                if waiting[after] == 0:
                    heapq.heappush(ready, (position[after], after))
        if len(order) < len(self.nodes):
            raise PipelineError(
                f"The steps form a cycle: {self._cycle()}. Break it by renaming or removing one step."
            )
        return order

    def _cycle(self) -> str:
        sorter = graphlib.TopologicalSorter({n: self.upstream(n) for n in self.nodes})
        try:
            sorter.prepare()
        except graphlib.CycleError as exc:
            cycle: list[str] = list(reversed(exc.args[1]))
            return " -> ".join(cycle)
        return "(unknown)"

    def descendants(self, nodes: list[str]) -> set[str]:
        """``nodes`` and everything downstream of them."""
        seen: set[str] = set()
        stack = list(nodes)
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(self.downstream(node))
        return seen

    def ancestors(self, nodes: Iterable[str]) -> set[str]:
        """Everything ``nodes`` read, directly or not (``nodes`` themselves only if read by another)."""
        found: set[str] = set()
        stack = list(nodes)
        while stack:
            for upstream in self.upstream(stack.pop()):
                if upstream not in found:
                    found.add(upstream)
                    stack.append(upstream)
        return found

    def select(self, only: Iterable[str] | None = None, from_step: str | None = None) -> set[str]:
        """The steps ``--only A,B`` and ``--from A`` name (``%etl run``, ``Pipeline.run``).

        Each ``only`` step comes with its checks and loads; ``from_step`` with
        everything after it. A name that is no step making a table is a
        ``PipelineError``. What the chosen steps read is not added: callers
        decide whether it must have run already or runs too.
        """
        only = list(only or [])
        tables = {n for n, s in self.nodes.items() if isinstance(s, ExtractStep | TransformStep)}
        for name in [*only, *([from_step] if from_step else [])]:
            if name not in tables:
                raise PipelineError(f"There is no step '{name}' to run.", step=name)
        chosen = self.descendants([from_step]) if from_step else set()
        for name in only:
            chosen.add(name)
            chosen |= {n for n in self.downstream(name) if isinstance(self.nodes[n], CheckStep | LoadStep)}
            chosen |= {n for n, s in self.nodes.items() if isinstance(s, LoadStep) and s.step == name}
        return chosen

    def mermaid(self, marks: dict[str, str] | None = None) -> str:
        """The graph as Mermaid ``flowchart`` text; ``marks`` adds a class per node (failed, stale)."""
        ids = {node: f"n{i}" for i, node in enumerate(self.nodes)}
        lines = ["flowchart LR"]
        for node, step in self.nodes.items():
            label = node if not isinstance(step, CheckStep | LoadStep) else _label(step)
            lines.append(f'    {ids[node]}["{label}"]')
        lines.extend(f"    {ids[a]} --> {ids[b]}" for a, b in self.edges)
        for node, mark in (marks or {}).items():
            if node in ids:
                lines.append(f"    class {ids[node]} {mark}")
        if marks:
            lines.append("    classDef failed fill:#fdd,stroke:#c00")
            lines.append("    classDef stale fill:#eee,stroke:#999,stroke-dasharray: 4")
        return "\n".join(lines)


def _label(step: CheckStep | LoadStep) -> str:
    if isinstance(step, CheckStep):
        return f"check {step.step}"
    return f"load {step.step} → {step.to}:{step.target}"


def build_dag(spec: PipelineSpec) -> Dag:
    """Infer every edge of ``spec``; raise a clear error for unknown names."""
    tables = spec.tables()
    nodes = spec.by_id()
    edges: list[tuple[str, str]] = []
    checks = {s.step for s in spec.steps if isinstance(s, CheckStep)}
    for node, step in nodes.items():
        for upstream in _inputs(step, tables, spec):
            edges.append((upstream, node))
        if isinstance(step, LoadStep) and step.step in checks:
            edges.append((f"check:{step.step}", node))
    return Dag(nodes=nodes, edges=list(dict.fromkeys(edges)))


def _inputs(step: Step, tables: dict[str, ExtractStep | TransformStep], spec: PipelineSpec) -> list[str]:
    if isinstance(step, ExtractStep):
        _require_connection(step.source, step.name, spec, "reads from")
        return []
    if isinstance(step, CheckStep | LoadStep):
        if step.step not in tables:
            kind = "check" if isinstance(step, CheckStep) else "load"
            raise PipelineError(
                f"The {kind} of '{step.step}' names a step that does not exist.{_hint(step.step, tables)}",
                step=step.step,
            )
        if isinstance(step, LoadStep):
            _require_connection(step.to, step.step, spec, "loads to")
        return [step.step]
    if step.sql is not None:
        # DuckDB matches table names case-insensitively, quoted or not.
        by_folded = {table.lower(): table for table in tables}
        names = []
        for name in _step_sql_tables(step.name, step.sql, tables):
            if name.lower() not in by_folded:
                raise PipelineError(
                    f"Step '{step.name}' reads table '{name}' but no step or connection makes it."
                    f"{_hint(name, tables)}",
                    step=step.name,
                )
            names.append(by_folded[name.lower()])
        names = list(dict.fromkeys(names))
        if step.name in names:
            raise PipelineError(f"The steps form a cycle: {step.name} -> {step.name}.", step=step.name)
        return names
    if step.function is not None:
        wanted = list(signature(step.function).parameters)
        unknown = [n for n in wanted if n not in tables]
        if unknown:
            raise PipelineError(
                f"Step '{step.name}' takes argument '{unknown[0]}' but no step makes it."
                f"{_hint(unknown[0], tables)}",
                step=step.name,
            )
        return wanted
    # A step may be named like a builtin ('input', 'filter'): its frame shadows the builtin.
    free = python_free_names(step.python or "", step.name, keep_builtins=True)
    return [n for n in free if n in tables and n != step.name]


def _step_sql_tables(name: str, sql: str, tables: dict[str, ExtractStep | TransformStep]) -> list[str]:
    try:
        return sql_tables(sql, name)
    except SpecError as exc:
        # A step named like an SQL keyword ('order', 'group') only parses when quoted.
        near = re.search(r'at or near "([^"]+)"', str(exc))
        if near and near.group(1) in tables:
            word = near.group(1)
            raise SpecError(
                f"{exc} '{word}' is an SQL keyword: write the step's name in double quotes "
                f'("{word}") or rename the step.',
                step=name,
            ) from None
        raise


def _require_connection(name: str, step: str, spec: PipelineSpec, verb: str) -> None:
    if name not in spec.connections:
        raise PipelineError(
            f"Step '{step}' {verb} connection '{name}', which is not declared."
            f"{_hint(name, spec.connections)} Declare it first: %etl connect {name} URL",
            step=step,
        )


def _hint(name: str, choices: Any) -> str:
    return did_you_mean(name, choices)


# --- SQL ------------------------------------------------------------------------------


def _parse_sql(sql: str) -> dict[str, Any]:
    global _parser  # noqa: PLW0603 - one parser connection per process
    with _parser_lock:
        if _parser is None:
            _parser = duckdb.connect(":memory:")
        row = _parser.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0]
    parsed: dict[str, Any] = json.loads(row[0])
    return parsed


def sql_tree(sql: str) -> dict[str, Any]:
    """DuckDB's parse tree of ``sql`` (``json_serialize_sql``), read by the one parser connection."""
    return _parse_sql(sql)


def bindable_sql(sql: str) -> str:
    """``sql`` with each ``{{ name }}`` turned into a DuckDB variable read (a bound value)."""
    return PARAMETER.sub(lambda m: f"getvariable('{m.group(1)}')", sql)


@lru_cache(maxsize=1024)
def sql_tables(sql: str, step: str = "") -> list[str]:
    """The table names a DuckDB SELECT reads, in order, without its CTE names."""
    parsed = _parse_sql(bindable_sql(sql))
    if parsed.get("error"):
        raise SpecError(_sql_error_message(sql, step, parsed), step=step or None)
    statements = parsed.get("statements", [])
    if len(statements) != 1:
        raise SpecError(
            f"Transform '{step}' holds {len(statements)} statements; a transform is one SELECT.",
            step=step or None,
        )
    found: list[str] = []
    _collect_tables(statements[0], frozenset(), found, step)
    return list(dict.fromkeys(found))


def _collect_tables(node: Any, ctes: frozenset[str], found: list[str], step: str) -> None:
    """Append the base tables under ``node`` to ``found``; ``ctes`` are the CTE names in scope.

    A CTE is in scope in the query that declares it and in the CTEs after it,
    not in its own body (unless recursive): ``WITH orders AS (SELECT * FROM
    orders ...)`` reads the step ``orders`` and then shadows it.
    """
    if isinstance(node, list):
        for item in node:
            _collect_tables(item, ctes, found, step)
        return
    if not isinstance(node, dict):
        return
    cte_map = node.get("cte_map")
    entries = cte_map.get("map", []) if isinstance(cte_map, dict) else []
    if entries:
        scope = set(ctes)
        for entry in entries:
            _collect_tables(entry.get("value"), frozenset(scope), found, step)
            scope.add(str(entry["key"]).lower())
        ctes = frozenset(scope)
    if node.get("type") == "RECURSIVE_CTE_NODE" and node.get("cte_name"):
        ctes = ctes | {str(node["cte_name"]).lower()}
    if node.get("type") == "TABLE_FUNCTION" and _is_parameter(node.get("function")):
        name = _parameter_name(node["function"])
        raise SpecError(
            f"Transform '{step}' reads from {{{{ {name} }}}} as if it were a table. A parameter is a "
            "bound value: it cannot name a table or column. Write the table's name in the SQL.",
            step=step or None,
        )
    if node.get("type") == "BASE_TABLE":
        schema = str(node.get("schema_name") or "")
        catalog = str(node.get("catalog_name") or "")
        table = str(node["table_name"])
        if catalog in ("", "memory", "temp") and schema in ("", "main"):
            if schema or table.lower() not in ctes:
                found.append(table)
        else:
            found.append(".".join(p for p in (catalog, schema, table) if p))
    for key, value in node.items():
        if key != "cte_map":
            _collect_tables(value, ctes, found, step)


def _is_parameter(function: Any) -> bool:
    return isinstance(function, dict) and function.get("function_name") == "getvariable"


def _parameter_name(function: dict[str, Any]) -> str:
    try:
        return str(function["arguments"][0]["expression"]["literal"]["text"])
    except (KeyError, IndexError, TypeError):
        return "parameter"


def _sql_error_message(sql: str, step: str, parsed: dict[str, Any]) -> str:
    message = str(parsed.get("error_message", "it does not parse"))
    if parsed.get("error_type") == "not implemented" or "Only SELECT" in message:
        return f"Transform '{step}' must be one SELECT (or WITH ... SELECT) statement."
    position = parsed.get("position")
    where = ""
    if position is not None and str(position).isdigit():
        before = bindable_sql(sql)[: int(position)]
        where = f" at line {before.count(chr(10)) + 1}, column {len(before.rsplit(chr(10), 1)[-1]) + 1}"
    return f"SQL error in transform '{step}'{where}: {message}."


# --- Python ---------------------------------------------------------------------------


def python_free_names(code: str, step: str = "", *, keep_builtins: bool = False) -> list[str]:
    """Names the code reads before (or without) binding them itself, in order.

    Builtins (``len``, ``sum``) are left out unless ``keep_builtins``.
    """
    finder = _FreeNames()
    try:
        finder.visit(ast.parse(code))
    except SyntaxError as exc:
        where = f" at line {exc.lineno}" if exc.lineno else ""
        raise SpecError(f"Python error in transform '{step}'{where}: {exc.msg}.", step=step or None) from None
    except (RecursionError, MemoryError):
        raise SpecError(
            f"Python error in transform '{step}': the code is nested too deeply to read. "
            "Split the expression into several statements.",
            step=step or None,
        ) from None
    return [n for n in dict.fromkeys(finder.free) if keep_builtins or not hasattr(builtins, n)]


class _FreeNames(ast.NodeVisitor):
    """Collects names loaded before any binding, visiting right-hand sides first."""

    def __init__(self) -> None:
        self.bound: set[str] = set()
        self.free: list[str] = []

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            if node.id not in self.bound:
                self.free.append(node.id)
        else:
            self.bound.add(node.id)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self.visit(target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        self.visit(node.target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.target, ast.Name) and node.target.id not in self.bound:
            self.free.append(node.target.id)
        self.visit(node.value)

    def _bind_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        # Defaults and decorators run where the function is defined, outside its scope.
        for expression in [*node.args.defaults, *node.args.kw_defaults, *getattr(node, "decorator_list", [])]:
            if expression is not None:
                self.visit(expression)
        outer = set(self.bound)
        self.bound.update(a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg))
        body = node.body if isinstance(node.body, list) else [node.body]
        for statement in body:
            self.visit(statement)
        self.bound = outer

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.bound.add(node.name)
        self._bind_function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.bound.add(node.name)
        self._bind_function(node)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._bind_function(node)

    def _visit_comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp
    ) -> None:
        outer = set(self.bound)
        for generator in node.generators:
            self.visit(generator.iter)
            self.visit(generator.target)
            for condition in generator.ifs:
                self.visit(condition)
        for child in ("elt", "key", "value"):
            if hasattr(node, child):
                self.visit(getattr(node, child))
        self.bound = outer

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _visit_comprehension

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.bound.add(node.name)
        for statement in node.body:
            self.visit(statement)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.pattern is not None:
            self.visit(node.pattern)
        if node.name:
            self.bound.add(node.name)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.bound.add(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        self.generic_visit(node)
        if node.rest:
            self.bound.add(node.rest)

    def visit_Import(self, node: ast.Import) -> None:
        self.bound.update((a.asname or a.name).split(".")[0] for a in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.bound.update(a.asname or a.name for a in node.names)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.bound.add(node.name)
        self.generic_visit(node)
