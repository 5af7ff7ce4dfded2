"""One DuckDB session: the tables, views, fused SQL and one-pass streams of a pipeline's steps.

A step's output lives here in one of four ways (``engine/plan.py`` decides
which): a table, a view, SQL text that readers inline as a CTE (fused), or
a registered Arrow stream that the one statement reading it scans (stream).
The session also holds the open connectors, one per connection.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import duckdb

from etl_nb._secrets import resolve
from etl_nb.connectors import Connector, ConnectorContext, connector_class
from etl_nb.engine.sqltext import in_user_lines, quote, sql_body
from etl_nb.errors import ConnectorError, PipelineError
from etl_nb.spec import AUTO_CONNECTION_TYPE, ConnectionSpec, infer_connection_type

if TYPE_CHECKING:  # a files pipeline never loads pyarrow (memory: docs/engine.md)
    import pyarrow as pa


class Session:
    """One DuckDB connection holding a pipeline's tables, and its open connectors."""

    def __init__(
        self,
        database: str = ":memory:",
        *,
        memory_limit: str | None = None,
        temp_directory: str | Path | None = None,
        threads: int | None = None,
    ) -> None:
        config: dict[str, Any] = {}
        if memory_limit:
            config["memory_limit"] = memory_limit
        if temp_directory:
            config["temp_directory"] = str(temp_directory)
        if threads:
            config["threads"] = threads
        self.con = duckdb.connect(database, config=config)
        # Every statement keeps its query profile, the rows each operator produced: how steps
        # that DuckDB runs inside a later statement (fused, scanned) get their rows counted.
        self.con.execute("PRAGMA enable_profiling = 'no_output'")
        self.con.execute("SET profiling_coverage = 'ALL'")
        # A counted step is a MATERIALIZED CTE (streamed to its one reader, not stored); with
        # its reader's filters kept out of it, the CTE's rows in the profile are the step's rows.
        self.con.execute("SET disabled_optimizers = 'cte_filter_pusher'")
        self.objects: dict[str, Literal["table", "view", "fused"]] = {}
        # Steps kept as SQL text and inlined (as CTEs) into whatever reads them,
        # so DuckDB plans a batch run as one query and binds each source once.
        self._fused: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._counted: set[str] = set()  # fused steps inlined as MATERIALIZED CTEs, to count their rows
        self._streams: dict[str, OneScan] = {}  # extracts read straight from their source, once
        self._connectors: dict[str, tuple[ConnectionSpec, Connector]] = {}

    def connector(self, spec: ConnectionSpec, context: ConnectorContext) -> Connector:
        """The open connector for ``spec``; reopened when the connection was redeclared."""
        known = self._connectors.get(spec.name)
        if known is not None and known[0] == spec:
            return known[1]
        if known is not None:
            known[1].close()
        kind = self.kind(spec, context)
        typed = spec if kind == spec.type else spec.model_copy(update={"type": kind})
        connector = connector_class(kind)(typed, context)
        connector.open()
        self._connectors[spec.name] = (spec, connector)
        return connector

    @staticmethod
    def kind(spec: ConnectionSpec, context: ConnectorContext) -> str:
        """The connector kind of ``spec``: an ``auto`` one's comes from its resolved URL's scheme.

        The resolved URL is only looked at, never kept: the spec keeps its ``${VAR}``.
        """
        if spec.type != AUTO_CONNECTION_TYPE:
            return spec.type
        kind = infer_connection_type(resolve(spec.url, context.env_file, connection=spec.name))
        if kind == AUTO_CONNECTION_TYPE:
            raise ConnectorError(
                f"Connection '{spec.name}': its URL resolves to another ${{...}} reference. Set the "
                "variable to the URL or folder itself, or add 'type:' to the connection."
            )
        return kind

    def put(
        self, name: str, relation: duckdb.DuckDBPyRelation | str, *, table: bool, reads: Iterable[str] = ()
    ) -> int | None:
        """Make ``name`` a table or a view of ``relation`` (a relation, or a SELECT reading ``reads``).

        Returns the rows of a table made from a SELECT, as DuckDB reports them (no count query), else None.
        """
        # A table made again from a SELECT replaces the old one in the same statement (one round trip).
        replace = table and isinstance(relation, str) and self.objects.get(name) == "table"
        if not replace:
            self.drop(name)
        rows = None
        if isinstance(relation, str):
            kind = "TABLE" if table else "VIEW"
            text, first = self._wrap(relation, reads)
            create = "CREATE OR REPLACE" if replace else "CREATE"
            try:
                done = self.con.execute(f"{create} {kind} {quote(name)} AS {text}").fetchall()
            except duckdb.Error as exc:
                self.drop(name)  # a step that failed has no output, as when it is made afresh
                raise in_user_lines(exc, first, relation) from None
            rows = int(done[0][0]) if table and done else None
        elif table:
            relation.to_table(name)
        else:
            relation.create_view(name, replace=True)
        self.objects[name] = "table" if table else "view"
        return rows

    def put_arrow(self, name: str, data: pa.RecordBatchReader | pa.Table) -> None:
        """Store Arrow data as table ``name``, streaming batch by batch."""
        self.put(name, self.con.from_arrow(data), table=True)

    def stream(self, name: str, reader: pa.RecordBatchReader) -> None:
        """Let the one statement that reads step ``name`` scan ``reader`` itself, storing nothing.

        The step is fused over the registered stream, so its reader pulls the
        batches straight from the source: no copy into a DuckDB table and back.
        The rows can be scanned once; a second scan is an error that says why,
        never an empty table.
        """
        registered = f"_etl_nb_stream_{name}"
        scan = OneScan(name, reader)
        self.con.register(registered, scan)
        self.fuse(name, f"SELECT * FROM {quote(registered)}")
        self._streams[name] = scan

    def fuse(self, name: str, select: str, reads: Iterable[str] = (), *, counted: bool = False) -> None:
        """Keep ``name`` as SQL text only; readers inline it (see ``inline``).

        ``counted``: inline it as a MATERIALIZED CTE, whose rows the reader's query
        profile gives (``last_profile``). DuckDB streams such a CTE to its one reader
        without storing it, but the reader's filters no longer reach into it, so an
        extract (whose scan the profile counts anyway) is not counted this way.
        """
        self.drop(name)
        self._fused[name] = (sql_body(select), tuple(reads))
        if counted:
            self._counted.add(name)
        self.objects[name] = "fused"

    def inline(self, select: str, reads: Iterable[str]) -> str:
        """``select`` with every fused step it reads (directly or not) defined as a CTE."""
        return self._wrap(select, reads)[0]

    def _wrap(self, select: str, reads: Iterable[str]) -> tuple[str, int]:
        """``inline``'s SQL, and the line on which ``select``'s own text starts in it.

        Every piece of user SQL sits on lines of its own, without trailing
        semicolons, so a trailing ``-- comment`` cannot swallow the closing
        parenthesis and DuckDB's ``LINE n`` can be mapped back to the step's text.
        """
        body = sql_body(select)
        order: list[str] = []

        def visit(name: str) -> None:
            if name in self._fused and name not in order:
                for upstream in self._fused[name][1]:
                    visit(upstream)
                order.append(name)

        for name in reads:
            visit(name)
        if not order:
            return f"\n{body}\n", 2
        ctes = ", ".join(
            f"{quote(n)} AS {'MATERIALIZED ' if n in self._counted else ''}(\n{self._fused[n][0]}\n)"
            for n in order
        )
        head = f"WITH {ctes}\nSELECT * FROM (\n"
        return f"{head}{body}\n)", head.count("\n") + 1

    def source(self, name: str) -> str:
        """What to read step ``name`` FROM: its table or view, or its fused SQL as a subquery."""
        for upstream in [name, *self._fused_closure([name])]:
            scan = self._streams.get(upstream)
            if scan is not None and scan.consumed:
                scan.refuse()
        if name in self._fused:
            select, reads = self._fused[name]
            return f"({self.inline(select, reads)}) AS {quote(name)}"
        return quote(name)

    def fused_sql(self, name: str) -> str | None:
        """The SQL text of fused step ``name`` (None if it is not fused)."""
        fused = self._fused.get(name)
        return fused[0] if fused else None

    def fused_upstream(self, reads: Iterable[str]) -> list[str]:
        """The fused steps among ``reads`` and, through them, their inputs (inputs first)."""
        return self._fused_closure(reads)

    def last_profile(self) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """The table scans of the last statement run on the session, and its counted steps' rows.

        A scan is DuckDB's operator record: ``extra_info`` (``Function``,
        ``Filename(s)``, pushed-down ``Filters``) and ``intermediate_rows``. The
        rows are those of each counted fused step (``fuse(counted=True)``) the
        statement read, by name.
        """
        try:
            profile = json.loads(self.con.get_profiling_information(format="json"))
        except (duckdb.Error, ValueError):
            return [], {}
        scans: list[dict[str, Any]] = []
        counted: dict[str, int] = {}
        stack = list(profile.get("operator", []))
        while stack:
            node = stack.pop()
            children = node.get("children", [])
            if node.get("type") == "TABLE_SCAN":
                scans.append(node)
            name = (node.get("extra_info") or {}).get("CTE Name")
            if node.get("type") == "CTE" and name in self._counted and children:
                counted[name] = int(children[0].get("intermediate_rows") or 0)  # the CTE's own query
            stack.extend(children)
        return scans, counted

    def culprit(self, reads: Iterable[str]) -> tuple[str, duckdb.Error] | None:
        """The first fused step among ``reads`` (and their inputs) whose SQL does not bind.

        Only a parser, binder or catalog error is the step's: anything else is not a
        mistake in its SQL, and finds no culprit.

        The error's ``LINE n`` is a line of that step's own SQL, not of the query around it.
        """
        for name in self._fused_closure(reads):
            select, upstream = self._fused[name]
            text, first = self._wrap(select, upstream)
            try:
                self.con.execute(f"DESCRIBE SELECT * FROM ({text}) AS {quote(name)}").fetchall()
            except (duckdb.BinderException, duckdb.ParserException, duckdb.CatalogException) as exc:
                return name, in_user_lines(exc, first, select)
            except duckdb.Error:
                # Not the step's SQL (the session is busy with a reader a failed load left
                # open, say): the statement that failed reports its own error.
                return None
        return None

    def _fused_closure(self, reads: Iterable[str]) -> list[str]:
        order: list[str] = []
        stack = list(reads)
        while stack:
            name = stack.pop()
            if name in self._fused and name not in order:
                order.append(name)
                stack.extend(self._fused[name][1])
        return list(reversed(order))

    def drop(self, name: str) -> None:
        """Remove ``name`` whether it is a table, a view or fused SQL."""
        kind = self.objects.pop(name, None)
        scan = self._streams.pop(name, None)
        if scan is not None:
            scan.release()
        if kind == "fused":
            del self._fused[name]
            self._counted.discard(name)
        elif kind is not None:
            self.con.execute(f"DROP {kind.upper()} IF EXISTS {quote(name)}")

    def has(self, name: str) -> bool:
        """Whether step ``name`` has an output in this session."""
        return name in self.objects

    def relation(self, name: str) -> duckdb.DuckDBPyRelation:
        """The output of step ``name``."""
        return self.con.sql(f"SELECT * FROM {self.source(name)}")

    def count(self, name: str) -> int:
        """The number of rows step ``name`` produced."""
        return int(self.con.execute(f"SELECT count(*) FROM {self.source(name)}").fetchall()[0][0])

    def bind(self, params: Mapping[str, Any]) -> None:
        """Make ``params`` readable as ``{{ name }}`` (DuckDB variables, bound not spliced)."""
        for name, value in params.items():
            self.con.execute(f"SET VARIABLE {quote(name)} = $1", [value])

    def streams_read_by(self, name: str) -> list[OneScan]:
        """The source streams step ``name`` reads, itself or through fused steps."""
        return [self._streams[n] for n in [name, *self._fused_closure([name])] if n in self._streams]

    def release_streams(self) -> None:
        """Close every stream nobody read: an open one holds its source's cursor (and its locks)."""
        for scan in self._streams.values():
            scan.release()
        for _, connector in self._connectors.values():
            connector.finish_run()

    def close(self) -> None:
        """Close every connector and the DuckDB connection."""
        self.release_streams()
        self._streams.clear()
        for _, connector in self._connectors.values():
            connector.close()
        self._connectors.clear()
        self.con.close()


class OneScan:
    """A stream registered with DuckDB that hands its batches over once.

    DuckDB asks for the Arrow stream only when a query runs, not when it is
    bound. A second scan (a retry of the reading step after its first try
    consumed the rows, or a look at the step after the run) raises an error that
    names the step and the way out, instead of seeing no rows.
    """

    def __init__(self, name: str, reader: pa.RecordBatchReader) -> None:
        self.name = name
        self.schema = reader.schema
        self._reader: pa.RecordBatchReader | None = reader
        self._failure: BaseException | None = None
        self.rows = 0  # rows handed over so far: the extract's row count once its reader is done

    @property
    def failure(self) -> BaseException | None:
        """The error that ended the source's stream, if one did."""
        return self._failure

    @property
    def consumed(self) -> bool:
        """Whether the rows were handed over already."""
        return self._reader is None

    def release(self) -> None:
        """Close the source's stream if nobody read it."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def refuse(self) -> None:
        """Raise the error that says the rows are gone and how to keep them."""
        cause = f" Its stream failed: {self._failure}" if self._failure is not None else ""
        raise PipelineError(
            f"Extract '{self.name}' streamed its rows straight into the step that reads it, "
            f"and they cannot be read twice.{cause} Run the pipeline again with "
            f"materialize='all' to keep its rows for a look.",
            step=self.name,
        )

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        import pyarrow as pa

        reader, self._reader = self._reader, None
        if reader is None:
            self.refuse()
        assert reader is not None

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                for batch in reader:
                    self.rows += batch.num_rows
                    yield batch
            except BaseException as exc:
                self._failure = exc
                raise

        return pa.RecordBatchReader.from_batches(self.schema, batches()).__arrow_c_stream__(requested_schema)
