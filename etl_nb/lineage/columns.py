"""Column lineage: each step's SQL parsed with sqlglot, composed through the steps to the sources."""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from etl_nb._logging import get_logger
from etl_nb.engine.dag import Dag, build_dag
from etl_nb.errors import EtlError
from etl_nb.lineage.datasets import connection_kind, extract_dataset, load_dataset, table_dataset
from etl_nb.lineage.model import SOURCE_DIALECTS, Dataset, InputColumn, Kind, OutputLineage, PipelineLineage
from etl_nb.spec import (
    PARAMETER,
    ExtractStep,
    LoadStep,
    PipelineSpec,
    TransformStep,
    step_id,
)

if TYPE_CHECKING:
    from sqlglot import exp
    from sqlglot.optimizer.scope import Scope


log = get_logger(component="lineage")

# --------------------------------------------------------------------------------------
# Column lineage of one SELECT (sqlglot)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Dep:
    """A column an output depends on: in table ``table`` (a step name or a source table)."""

    table: str
    column: str
    type: Kind
    subtype: str


@dataclass
class _SelectLineage:
    columns: list[str]
    fields: dict[str, list[_Dep]]
    indirect: list[_Dep]
    tables: list[str]


_SUBTYPE_RANK = {"IDENTITY": 0, "TRANSFORMATION": 1, "AGGREGATION": 2}


def _combine(outer: str, inner: str) -> str:
    """Two DIRECT steps in a row: the stronger of the two (an aggregate of a sum is an aggregation)."""
    return outer if _SUBTYPE_RANK.get(outer, 1) >= _SUBTYPE_RANK.get(inner, 1) else inner


def _analyse_select(sql: str, dialect: str | None, schema: Mapping[str, Sequence[str]]) -> _SelectLineage:
    """Output columns of ``sql`` and, for each, the table columns it depends on."""
    # Imported here: sqlglot is a large library, needed only when lineage is asked for.
    import sqlglot
    from sqlglot import exp
    from sqlglot.optimizer.qualify import qualify
    from sqlglot.optimizer.scope import build_scope

    text = PARAMETER.sub("NULL", sql)  # {{ name }} is a bound value, not SQL
    tree = sqlglot.parse_one(text, read=dialect)
    typed: dict[str, object] = {name: dict.fromkeys(columns, "TEXT") for name, columns in schema.items()}
    # Not every query qualifies (a name sqlglot cannot place): then it is read as written.
    with contextlib.suppress(sqlglot.errors.SqlglotError):
        tree = qualify(
            tree,
            schema=typed or None,
            dialect=dialect,
            validate_qualify_columns=False,
            quote_identifiers=False,
            identify=False,
        )
    root = build_scope(tree)
    if root is None:
        return _SelectLineage([], {}, [], [])
    walker = _ScopeWalker(schema)
    columns, fields = walker.projections(root)
    tables = sorted(
        {
            _table_name(source)
            for scope in root.traverse()
            for source in scope.sources.values()
            if isinstance(source, exp.Table)
        }
    )
    return _SelectLineage(columns, fields, walker.indirect(root), tables)


class _ScopeWalker:
    """Resolves columns through sqlglot scopes (CTEs, subqueries) to the base tables."""

    def __init__(self, schema: Mapping[str, Sequence[str]]) -> None:
        self.schema = {k.lower(): list(v) for k, v in schema.items()}

    def projections(self, scope: Scope) -> tuple[list[str], dict[str, list[_Dep]]]:
        from sqlglot import exp

        select = scope.expression
        if isinstance(select, exp.SetOperation):  # UNION: columns by position from each side
            columns: list[str] = []
            fields: dict[str, list[_Dep]] = {}
            for branch in scope.set_operation_scopes:
                names, deps = self.projections(branch)
                if not columns:
                    columns = names
                for position, name in enumerate(names):
                    if position < len(columns):
                        fields.setdefault(columns[position], []).extend(deps.get(name, []))
            return columns, fields
        columns = []
        fields = {}
        for projection in getattr(select, "selects", []):
            name = projection.alias_or_name
            columns.append(name)
            fields[name] = self.direct(scope, projection)
        return columns, fields

    def direct(self, scope: Scope, expression: exp.Expression) -> list[_Dep]:
        from sqlglot import exp

        inner = expression.unalias() if isinstance(expression, exp.Alias) else expression
        if isinstance(inner, exp.Column):
            subtype = "IDENTITY"
        elif inner.find(exp.AggFunc) is not None:
            subtype = "AGGREGATION"
        else:
            subtype = "TRANSFORMATION"
        deps = []
        for column in inner.find_all(exp.Column):
            for dep in self.resolve(scope, column):
                kind: Kind = "DIRECT" if dep.type == "DIRECT" else "INDIRECT"
                deps.append(_Dep(dep.table, dep.column, kind, _combine(subtype, dep.subtype)))
        return deps

    def resolve(self, scope: Scope, column: exp.Column) -> list[_Dep]:
        """The base-table columns that ``column`` (seen in ``scope``) is."""
        from sqlglot import exp
        from sqlglot.optimizer.scope import Scope

        if column.table:
            candidates = [column.table] if column.table in scope.sources else []
        else:
            candidates = self.holders(scope, list(scope.sources), column.name)
        deps: list[_Dep] = []
        for alias in candidates:
            source = scope.sources[alias]
            if isinstance(source, exp.Table):
                deps.append(_Dep(_table_name(source), column.name, "DIRECT", "IDENTITY"))
            elif isinstance(source, Scope):
                names, fields = self.projections(source)
                if column.name in fields:
                    deps.extend(fields[column.name])
                elif "*" in names:  # SELECT * in a CTE or subquery: the column of what it reads
                    deps.extend(self.resolve(source, exp.column(column.name)))
        return deps

    def holders(self, scope: Scope, aliases: Sequence[str], name: str) -> list[str]:
        """Which of ``aliases`` have column ``name``: those known to, else the first that may."""
        known = [a for a in aliases if self._has(scope.sources[a], name) is True]
        if known:
            return known
        return [a for a in aliases if self._has(scope.sources[a], name) is None][:1] or list(aliases)[:1]

    def _has(self, source: Any, name: str) -> bool | None:
        """Whether ``source`` has column ``name``; None when its columns are not known."""
        from sqlglot import exp

        if isinstance(source, exp.Table):
            columns = self.schema.get(_table_name(source).lower())
            return None if columns is None else name in columns
        names, _ = self.projections(source)
        return True if name in names else (None if "*" in names else False)

    def indirect(self, scope: Scope) -> list[_Dep]:
        """Columns that decide which rows there are (joins, filters, group-bys, sorts, windows)."""
        from sqlglot import exp
        from sqlglot.optimizer.scope import Scope

        select = scope.expression
        deps: list[_Dep] = []
        if isinstance(select, exp.SetOperation):
            for branch in scope.set_operation_scopes:
                deps.extend(self.indirect(branch))
            return deps
        clauses: list[tuple[str, exp.Expression | None]] = [
            ("FILTER", select.args.get("where")),
            ("FILTER", select.args.get("having")),
            ("FILTER", select.args.get("qualify")),
            ("SORT", select.args.get("order")),
        ]
        clauses += [("JOIN", join.args.get("on")) for join in select.args.get("joins") or []]
        projections: list[exp.Expression] = list(getattr(select, "selects", []))
        # ORDER BY revenue_eur names a projection: what the projection is made of.
        by_alias = {p.alias: p for p in projections if isinstance(p, exp.Alias)}
        group = select.args.get("group")
        if group is not None:
            clauses.append(("GROUP_BY", group))
            if group.args.get("all"):  # GROUP BY ALL: every projection that aggregates nothing
                clauses += [("GROUP_BY", p) for p in projections if p.find(exp.AggFunc) is None]
        clauses += [("WINDOW", w) for p in projections for w in p.find_all(exp.Window)]
        for subtype, clause in clauses:
            if clause is None:
                continue
            for column in clause.find_all(exp.Column):
                alias = by_alias.get(column.name) if not column.table else None
                found = self.direct(scope, alias) if alias is not None else self.resolve(scope, column)
                deps += [_Dep(d.table, d.column, "INDIRECT", subtype) for d in found]
        # JOIN ... USING (col): col of the joined table and of a table before it that has it.
        aliases = [
            a for a in scope.sources if a == _alias(select.args.get("from_") or select.args.get("from"))
        ]
        for join in select.args.get("joins") or []:
            joined = _alias(join)
            for name in join.args.get("using") or []:
                for side in [joined, *self.holders(scope, aliases, name.name)] if joined else []:
                    column = exp.column(name.name, table=side)
                    deps += [_Dep(d.table, d.column, "INDIRECT", "JOIN") for d in self.resolve(scope, column)]
            if joined:
                aliases.append(joined)
        # Rows of a subquery or CTE that are filtered there are filtered here too.
        for source in scope.sources.values():
            if isinstance(source, Scope):
                deps.extend(self.indirect(source))
        for subquery in scope.subquery_scopes:
            _, fields = self.projections(subquery)
            deps += [_Dep(d.table, d.column, "INDIRECT", "FILTER") for ds in fields.values() for d in ds]
        return deps


def _alias(node: Any) -> str | None:
    """The alias a FROM or JOIN clause gives its table or subquery."""
    this = getattr(node, "this", None)
    return str(this.alias_or_name) if this is not None else None


def _table_name(table: exp.Table) -> str:
    return ".".join(part for part in (table.db, table.name) if part)


# --------------------------------------------------------------------------------------
# Composing the steps
# --------------------------------------------------------------------------------------


_IDENTIFIER_TEXT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Composer:
    """Each table step's columns in terms of source columns, memoised, from extracts down to loads."""

    def __init__(
        self,
        spec: PipelineSpec,
        dag: Dag,
        base_dir: Path,
        columns: Mapping[str, Sequence[str]],
        types: Mapping[str, Mapping[str, str]],
    ) -> None:
        self.spec, self.dag, self.base_dir = spec, dag, base_dir
        self.known = {k: list(v) for k, v in columns.items()}
        self.types = types
        self.tables = spec.tables()
        self._steps: dict[str, tuple[list[str], dict[str, list[InputColumn]], list[InputColumn]]] = {}
        # Extracts whose every column is the same column of one dataset (a file, an API, or
        # SELECT * from one table): a column they are asked for is that dataset's, known or not.
        self._passthrough: dict[str, Dataset] = {}
        self.inputs: dict[Dataset, dict[str, str | None]] = {}

    def step(self, name: str) -> tuple[list[str], dict[str, list[InputColumn]], list[InputColumn]]:
        """(columns, column -> source columns, source columns that touch every row) of step ``name``."""
        if name not in self._steps:
            step = self.tables[name]
            try:
                found = self._extract(step) if isinstance(step, ExtractStep) else self._transform(step)
            except Exception as exc:  # a query sqlglot cannot read: say so, keep the rest
                log.warning("no column lineage for a step", step=name, error=str(exc))
                found = (self.known.get(name, []), {}, [])
            self._steps[name] = found
        return self._steps[name]

    def _note_input(self, dataset: Dataset, column: str, kind: str | None) -> None:
        columns = self.inputs.setdefault(dataset, {})
        if columns.get(column) is None:
            columns[column] = kind

    def _extract(
        self, step: ExtractStep
    ) -> tuple[list[str], dict[str, list[InputColumn]], list[InputColumn]]:
        connection = self.spec.connections[step.source]
        known = self.known.get(step.name, [])
        types = self.types.get(step.name, {})
        if step.query is None or connection.type in ("files", "http"):
            dataset = extract_dataset(connection, step, self.base_dir)
            self.inputs.setdefault(dataset, {})
            self._passthrough[step.name] = dataset
            for column in known:
                self._note_input(dataset, column, types.get(column))
            return known, {c: [InputColumn(dataset, c, "DIRECT", "IDENTITY")] for c in known}, []
        dialect = SOURCE_DIALECTS.get(connection_kind(connection))
        parsed = _analyse_select(step.query, dialect, {})
        for table in parsed.tables:
            self.inputs.setdefault(table_dataset(connection, table), {})
        columns = known or [c for c in parsed.columns if c != "*"]

        def sources(deps: Iterable[_Dep], kind: Kind | None = None) -> list[InputColumn]:
            return [
                InputColumn(table_dataset(connection, d.table), d.column, kind or d.type, d.subtype)
                for d in deps
                if d.column != "*"
            ]

        fields: dict[str, list[InputColumn]] = {}
        single = parsed.tables[0] if len(parsed.tables) == 1 else None
        if single is not None and "*" in parsed.columns:
            self._passthrough[step.name] = table_dataset(connection, single)
        for column in columns:
            deps = sources(parsed.fields.get(column, []))
            if not deps and single is not None:  # SELECT * from one table: the same column there
                deps = [InputColumn(table_dataset(connection, single), column, "DIRECT", "IDENTITY")]
            fields[column] = deps
            for dep in deps:
                kind = types.get(column) if dep.subtype == "IDENTITY" else None
                self._note_input(dep.dataset, dep.field, kind)
        indirect = sources(parsed.indirect, "INDIRECT")
        for dep in indirect:
            self._note_input(dep.dataset, dep.field, None)
        return columns, fields, indirect

    def _transform(
        self, step: TransformStep
    ) -> tuple[list[str], dict[str, list[InputColumn]], list[InputColumn]]:
        reads = [n for n in self.dag.upstream(step.name) if n in self.tables]
        upstream = {n: self.step(n) for n in reads}
        if step.sql is None:
            return self._python(step, upstream)
        schema = {n: cols for n, (cols, _, _) in upstream.items()}
        parsed = _analyse_select(step.sql, "duckdb", schema)
        by_lower = {n.lower(): n for n in upstream}
        indirect: list[InputColumn] = []
        for name in upstream:  # rows an upstream step filtered out are gone here too
            indirect += [_as_indirect(s) for s in upstream[name][2]]
        fields: dict[str, list[InputColumn]] = {}
        for column in parsed.columns:
            fields[column] = self._compose(parsed.fields.get(column, []), upstream, by_lower)
        indirect += self._compose(parsed.indirect, upstream, by_lower)
        columns = self.known.get(step.name) or parsed.columns
        return columns, {c: fields.get(c, []) for c in columns}, _unique(indirect)

    def _compose(
        self,
        deps: Iterable[_Dep],
        upstream: Mapping[str, tuple[list[str], dict[str, list[InputColumn]], list[InputColumn]]],
        by_lower: Mapping[str, str],
    ) -> list[InputColumn]:
        found: list[InputColumn] = []
        for dep in deps:
            name = by_lower.get(dep.table.lower())
            if name is None:
                continue
            sources = upstream[name][1].get(dep.column)
            if sources is None and name in self._passthrough:
                dataset = self._passthrough[name]
                sources = [InputColumn(dataset, dep.column, "DIRECT", "IDENTITY")]
                self._note_input(dataset, dep.column, None)
            for source in sources or []:
                if dep.type == "INDIRECT" or source.type == "INDIRECT":
                    subtype = dep.subtype if dep.type == "INDIRECT" else source.subtype
                    found.append(InputColumn(source.dataset, source.field, "INDIRECT", subtype))
                else:
                    found.append(
                        InputColumn(
                            source.dataset, source.field, "DIRECT", _combine(dep.subtype, source.subtype)
                        )
                    )
        return _unique(found)

    def _python(
        self,
        step: TransformStep,
        upstream: Mapping[str, tuple[list[str], dict[str, list[InputColumn]], list[InputColumn]]],
    ) -> tuple[list[str], dict[str, list[InputColumn]], list[InputColumn]]:
        """A Python step: each of its columns depends on the input columns its code names."""
        code = step.python or ""
        if step.function is not None:
            try:
                code = inspect.getsource(step.function)
            except (OSError, TypeError):
                code = ""
        words = set(_IDENTIFIER_TEXT.findall(code))
        read: list[InputColumn] = []
        indirect: list[InputColumn] = []
        for cols, fields, rows in upstream.values():
            for column in cols:
                if column in words:
                    read += [
                        InputColumn(
                            s.dataset, s.field, s.type, "TRANSFORMATION" if s.type == "DIRECT" else s.subtype
                        )
                        for s in fields.get(column, [])
                    ]
            indirect += [_as_indirect(s) for s in rows]
        columns = self.known.get(step.name, [])
        return columns, {c: _unique(read) for c in columns}, _unique(indirect)


def _as_indirect(source: InputColumn) -> InputColumn:
    return (
        source
        if source.type == "INDIRECT"
        else InputColumn(source.dataset, source.field, "INDIRECT", "FILTER")
    )


def _unique(items: Iterable[InputColumn]) -> list[InputColumn]:
    return list(dict.fromkeys(items))


def pipeline_lineage(
    spec: PipelineSpec,
    *,
    base_dir: str | Path = ".",
    columns: Mapping[str, Sequence[str]] | None = None,
    types: Mapping[str, Mapping[str, str]] | None = None,
) -> PipelineLineage:
    """The column lineage of ``spec``: its inputs and, for each load, where each column comes from.

    ``columns`` gives the columns of steps where they are known (after a run,
    or from the last good run): an extract's, and a Python step's, which SQL
    cannot tell. ``types`` gives an extract's column types (``{step: {column:
    type}}``) for the inputs' schema.
    """
    if importlib.util.find_spec("sqlglot") is None:
        raise EtlError("Column lineage reads SQL with sqlglot: pip install 'etl_nb[lineage]'.")
    dag = build_dag(spec)
    composer = _Composer(spec, dag, Path(base_dir).resolve(), columns or {}, types or {})
    lineage = PipelineLineage()
    for step in spec.steps:
        if isinstance(step, ExtractStep):
            composer.step(step.name)
    for step in spec.steps:
        if (
            not isinstance(step, LoadStep)
            or step.step not in spec.tables()
            or step.to not in spec.connections
        ):
            continue
        step_columns, fields, indirect = composer.step(step.step)
        output = OutputLineage(
            step_id(step), load_dataset(spec.connections[step.to], step, composer.base_dir)
        )
        for column in step_columns:
            output.fields[column] = _unique([*fields.get(column, []), *indirect])
        lineage.outputs.append(output)
    lineage.inputs = composer.inputs
    return lineage


class _ColumnStore(Protocol):
    def last_columns(self, pipeline: str, step: str) -> tuple[str, dict[str, str]] | None: ...


def last_good_columns(store: _ColumnStore, spec: PipelineSpec) -> dict[str, dict[str, str]]:
    """Each extract's columns and types in its last successful run (``RunStore.last_columns``)."""
    found = {}
    for step in spec.steps:
        if isinstance(step, ExtractStep):
            last = store.last_columns(spec.name, step.name)
            if last is not None:
                found[step.name] = last[1]
    return found
