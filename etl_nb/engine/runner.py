"""Running a pipeline's steps in one DuckDB session.

The runner walks the DAG in order. Extracts become DuckDB views over files
or tables filled from Arrow batches; SQL transforms become views that DuckDB
fuses with whatever reads them, unless something needs the rows themselves
(a preview, a check, a Python step, several readers), and then a table.
Loads are staged as they come and committed together only when every step
has succeeded, so a failed run leaves every target exactly as it was.
"""

from __future__ import annotations

import ast
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import duckdb
import polars as pl
import pyarrow as pa

from etl_nb._logging import get_logger
from etl_nb._secrets import resolve
from etl_nb.connectors import (
    Connector,
    ConnectorContext,
    PendingWrite,
    ReadRequest,
    WriteRequest,
    connector_class,
)
from etl_nb.engine.checks import raise_for_failures, run_checks
from etl_nb.engine.dag import Dag, bindable_sql
from etl_nb.engine.sqltext import quote
from etl_nb.errors import ConnectorError, EtlError, MissingParameter, PipelineError
from etl_nb.retry import RetryPolicy
from etl_nb.spec import (
    AUTO_CONNECTION_TYPE,
    CheckStep,
    ConnectionSpec,
    ExtractStep,
    LoadStep,
    PipelineSpec,
    Step,
    TransformStep,
    infer_connection_type,
    step_id,
)

Materialize = Literal["auto", "all"]
StepStatus = Literal["success", "failed", "skipped", "warned"]


@dataclass
class StepOutcome:
    """How one step went."""

    step: str
    kind: str
    status: StepStatus
    rows: int | None = None
    seconds: float = 0.0
    error: str | None = None
    detail: dict[str, Any] | None = None


class RunListener(Protocol):
    """Told about each step as a run goes (progress bars, logs)."""

    def step_started(self, step: str, index: int, total: int) -> None:
        """``step`` (the ``index``-th of ``total``) is starting."""

    def step_finished(self, outcome: StepOutcome) -> None:
        """``outcome.step`` has ended."""


@dataclass
class RunOutcome:
    """Every step's outcome, the first error, and the new incremental marks."""

    steps: list[StepOutcome]
    error: BaseException | None = None
    watermarks: dict[str, tuple[str, Any]] = field(default_factory=dict)

    @property
    def status(self) -> Literal["success", "failed"]:
        """``failed`` if any step failed."""
        return "failed" if self.error is not None else "success"


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
        self.objects: dict[str, Literal["table", "view", "fused"]] = {}
        # Steps kept as SQL text and inlined (as CTEs) into whatever reads them,
        # so DuckDB plans a batch run as one query and binds each source once.
        self._fused: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._streams: dict[str, _OneScan] = {}  # extracts read straight from their source, once
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
    ) -> None:
        """Make ``name`` a table or a view of ``relation`` (a relation, or a SELECT reading ``reads``)."""
        self.drop(name)
        if isinstance(relation, str):
            kind = "TABLE" if table else "VIEW"
            text, first = self._wrap(relation, reads)
            try:
                self.con.execute(f"CREATE {kind} {quote(name)} AS {text}")
            except duckdb.Error as exc:
                raise _in_user_lines(exc, first, relation) from None
        elif table:
            relation.to_table(name)
        else:
            relation.create_view(name, replace=True)
        self.objects[name] = "table" if table else "view"

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
        scan = _OneScan(name, reader)
        self.con.register(registered, scan)
        self.fuse(name, f"SELECT * FROM {quote(registered)}")
        self._streams[name] = scan

    def fuse(self, name: str, select: str, reads: Iterable[str] = ()) -> None:
        """Keep ``name`` as SQL text only; readers inline it (see ``inline``)."""
        self.drop(name)
        self._fused[name] = (sql_body(select), tuple(reads))
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
        ctes = ", ".join(f"{quote(n)} AS (\n{self._fused[n][0]}\n)" for n in order)
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

    def culprit(self, reads: Iterable[str]) -> tuple[str, duckdb.Error] | None:
        """The first fused step among ``reads`` (and their inputs) whose SQL does not bind.

        The error's ``LINE n`` is a line of that step's own SQL, not of the query around it.
        """
        for name in self._fused_closure(reads):
            select, upstream = self._fused[name]
            text, first = self._wrap(select, upstream)
            try:
                self.con.execute(f"DESCRIBE SELECT * FROM ({text}) AS {quote(name)}").fetchall()
            except duckdb.Error as exc:
                return name, _in_user_lines(exc, first, select)
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

    def streams_read_by(self, name: str) -> list[_OneScan]:
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


class Runner:
    """Runs the steps of one pipeline in a session."""

    def __init__(
        self,
        spec: PipelineSpec,
        dag: Dag,
        session: Session,
        context: ConnectorContext,
        *,
        retry: RetryPolicy | None = None,
        listener: RunListener | None = None,
        run_id: str | None = None,
    ) -> None:
        self.dag = dag
        self.session = session
        self.context = context
        self.spec = self._typed(spec)
        self.retry = retry or RetryPolicy()
        self.listener = listener
        self.run_id = run_id or uuid.uuid4().hex
        self._in_run: set[str] = set(dag.nodes)
        self.log = get_logger(pipeline=spec.name, run_id=self.run_id)
        self._attempts: dict[str, int] = {}  # node -> attempts made, when a step was retried

    def _typed(self, spec: PipelineSpec) -> PipelineSpec:
        """``spec`` with each ``auto`` connection typed (where its ``${VAR}`` is set), so that a
        step can ask a connection's kind before it opens; opening one that is not set says why."""
        typed = dict(spec.connections)
        for name, connection in spec.connections.items():
            if connection.type == AUTO_CONNECTION_TYPE:
                try:
                    kind = Session.kind(connection, self.context)
                except EtlError:
                    continue
                typed[name] = connection.model_copy(update={"type": kind})
        return spec if typed == spec.connections else spec.model_copy(update={"connections": typed})

    def run(
        self,
        nodes: Iterable[str],
        params: Mapping[str, Any],
        *,
        materialize: Materialize = "auto",
        watermarks: Mapping[str, Any] | None = None,
    ) -> RunOutcome:
        """Run ``nodes`` (in DAG order) with ``params``; commit loads only if all succeed."""
        wanted = set(nodes)
        self._in_run = wanted
        order = [n for n in self.dag.order() if n in wanted]
        outcome = RunOutcome(steps=[])
        pending: list[PendingWrite] = []
        staged: list[tuple[StepOutcome, PendingWrite]] = []
        try:
            self._bind_params(order, params)
            for index, node in enumerate(order):
                step = self.dag.nodes[node]
                if outcome.error is not None:
                    outcome.steps.append(StepOutcome(node, step.verb, "skipped"))
                    continue
                if self.listener:
                    self.listener.step_started(node, index, len(order))
                before = len(pending)
                result = self._run_node(node, step, params, materialize, watermarks or {}, outcome, pending)
                if len(pending) > before:
                    staged.append((result, pending[-1]))
                outcome.steps.append(result)
                if self.listener:
                    self.listener.step_finished(result)
            if outcome.error is None:
                self._commit(staged, pending, outcome)
        except EtlError as exc:  # a parameter problem before any step ran
            outcome.error = exc
        finally:
            for write in pending:
                write.abort()
            # A stream is good for this run only: close any that no step read.
            self.session.release_streams()
        if outcome.error is not None:
            outcome.watermarks.clear()
            for result, write in staged:
                if any(w is write for w in pending) and result.status == "success":
                    # Staged, then dropped: report what the target holds, which is nothing new.
                    result.status, result.rows = "skipped", None
                    result.error = "not committed: the run failed, so the target was left as it was"
        return outcome

    def _commit(
        self,
        staged: list[tuple[StepOutcome, PendingWrite]],
        pending: list[PendingWrite],
        outcome: RunOutcome,
    ) -> None:
        """Commit every staged load in order; the first failure stops the rest (they are aborted)."""
        for result, write in staged:
            try:
                write.commit()
            except Exception as exc:
                error = (
                    exc
                    if isinstance(exc, EtlError)
                    else ConnectorError(
                        f"Cannot commit load '{result.step}': {exc.__class__.__name__}: {exc}. "
                        "The target was left as it was.",
                        step=result.step,
                    )
                )
                if error.step is None:
                    error.step = result.step
                result.status, result.error, result.rows = "failed", str(error), None
                outcome.error = error
                return
            pending[:] = [w for w in pending if w is not write]

    def _bind_params(self, order: list[str], params: Mapping[str, Any]) -> None:
        used: dict[str, str] = {}
        in_duckdb: set[str] = set()  # read by DuckDB SQL (transforms, checks), not by a source
        for node in order:
            step = self.dag.nodes[node]
            if isinstance(step, TransformStep | ExtractStep | CheckStep):
                for name in step.parameters:
                    used.setdefault(name, node)
                    if not isinstance(step, ExtractStep):
                        in_duckdb.add(name)
        missing = [(name, node) for name, node in used.items() if name not in params]
        if missing:
            name, node = missing[0]
            raise MissingParameter(name, step=node, known=params)
        self.session.bind({name: params[name] for name in in_duckdb})

    def _run_node(
        self,
        node: str,
        step: Step,
        params: Mapping[str, Any],
        materialize: Materialize,
        watermarks: Mapping[str, Any],
        outcome: RunOutcome,
        pending: list[PendingWrite],
    ) -> StepOutcome:
        started = time.perf_counter()
        result = StepOutcome(node, step.verb, "success")
        log = self.log.bind(step=node)
        try:
            if isinstance(step, ExtractStep):
                result.rows = self._extract(step, params, materialize, watermarks, outcome)
                self._note_warnings(step, result)
            elif isinstance(step, TransformStep):
                result.rows = self._transform(step, params, materialize)
            elif isinstance(step, CheckStep):
                self._check(step, result)
            else:
                write = self._load(step)
                pending.append(write)
                result.rows = write.rows
        except EtlError as exc:
            if exc.step is None:
                exc.step = node
            outcome.error = exc
            result.status, result.error = "failed", str(exc)
            if self.session.objects.get(exc.step) == "fused":
                _blame_fused_step(outcome, result, exc)
        except Exception as exc:
            # A bug in etl_nb: record it, then let the caller show the traceback.
            outcome.error = exc
            result.status, result.error = (
                "failed",
                f"internal error: {exc.__class__.__name__}: {exc}",
            )
        if node in self._attempts:
            result.detail = {**(result.detail or {}), "attempts": self._attempts.pop(node)}
        result.seconds = time.perf_counter() - started
        log.info(
            "step finished",
            status=result.status,
            rows=result.rows,
            seconds=round(result.seconds, 4),
        )
        return result

    # --- the four verbs -------------------------------------------------------------------

    def _needs_table(self, name: str, materialize: Materialize) -> bool:
        if materialize == "all":
            return True
        readers = self.dag.downstream(name)
        if len(readers) > 1 or any(r not in self._in_run for r in readers):
            return True  # read several times, or later by a step outside this run
        if any(_qualified_read(self.dag.nodes[r], name) for r in readers):
            return True  # `main.name` cannot find a CTE: keep a real table
        return any(isinstance(self.dag.nodes[r], CheckStep) for r in readers) or any(
            isinstance(s := self.dag.nodes[r], TransformStep) and s.sql is None for r in readers
        )

    def _extract(
        self,
        step: ExtractStep,
        params: Mapping[str, Any],
        materialize: Materialize,
        watermarks: Mapping[str, Any],
        outcome: RunOutcome,
    ) -> int | None:
        connector = self.session.connector(self.spec.connections[step.source], self.context)
        connector.check_extract(step)
        since = watermarks.get(step.name) if step.incremental else None
        request = ReadRequest(extract=step, params={p: params[p] for p in step.parameters}, since=since)
        as_table = bool(step.incremental) or self._needs_table(step.name, materialize)

        def extract() -> None:
            select = connector.scan(request, self.session.con)
            if select is None:
                if not as_table and self._read_once_downstream(step.name):
                    # Transient errors while the rows flow surface in the reading step and
                    # are not retried there: a stream cannot be replayed (see _OneScan).
                    self.session.stream(step.name, connector.read(request))
                else:
                    self._put_stream(step.name, connector.read(request))
                return
            if since is not None and step.incremental:
                self.session.bind({f"etl_since_{step.name}": since})
                select = (
                    f"SELECT * FROM ({select}) "
                    f"WHERE {quote(step.incremental)} > getvariable('etl_since_{step.name}')"
                )
            if not as_table and self.dag.downstream(step.name):
                self.session.fuse(step.name, select)
                return
            try:
                self.session.put(step.name, select, table=as_table)
            except duckdb.Error as exc:
                raise ConnectorError(
                    f"Cannot read '{step.name}' from connection '{step.source}': {exc}", step=step.name
                ) from None

        self.retry.call(extract, self._log_retry(step.name))
        if step.incremental:
            self._advance_watermark(step, since, outcome)
        return self.session.count(step.name) if self.session.objects[step.name] == "table" else None

    def _read_once_downstream(self, name: str) -> bool:
        """Whether one statement reads ``name``'s rows: a SQL transform stored as a table, or a
        load into a sink that scans its rows once, possibly through fused SQL transforms."""
        node = name
        while len(readers := self.dag.downstream(node)) == 1:
            reader = self.dag.nodes[readers[0]]
            if isinstance(reader, LoadStep):
                kind = connector_class(self.spec.connections[reader.to].type)
                return bool(getattr(kind, "scans_rows_once", False))
            if not isinstance(reader, TransformStep) or reader.sql is None:
                return False
            if self._needs_table(reader.name, "auto"):
                return True  # CREATE TABLE ... AS reads it once (a CTE used twice is materialised)
            node = reader.name
        return False

    def _put_stream(self, name: str, reader: pa.RecordBatchReader) -> None:
        """Store a connector's batches as table ``name``.

        DuckDB reports an exception raised while it pulls a batch as its own
        error, dropping the type; the ``EtlError`` that ended the stream (a
        ``ConnectorError`` on page 7, say) is raised as itself so that its message
        reaches the user and a transient one is retried.
        """
        failure: list[EtlError] = []

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                yield from reader
            except EtlError as exc:
                failure.append(exc)
                raise

        try:
            self.session.put_arrow(name, pa.RecordBatchReader.from_batches(reader.schema, batches()))
        except duckdb.Error:
            if failure:
                raise failure[0] from None
            raise

    def _advance_watermark(self, step: ExtractStep, since: Any, outcome: RunOutcome) -> None:
        assert step.incremental is not None
        if step.incremental not in self.session.relation(step.name).columns:
            raise PipelineError(
                f"Extract '{step.name}' is incremental on '{step.incremental}', but its rows have no "
                f"such column. Select it in the query or fix --incremental.",
                step=step.name,
            )
        newest = self.session.con.execute(
            f"SELECT max({quote(step.incremental)}) FROM {quote(step.name)}"
        ).fetchall()[0][0]
        mark = newest if newest is not None else since
        if mark is not None:
            outcome.watermarks[step.name] = (step.incremental, mark)

    def _transform(
        self, step: TransformStep, params: Mapping[str, Any], materialize: Materialize
    ) -> int | None:
        if step.sql is not None:
            reads = self._reads(step.name)
            as_table = self._needs_table(step.name, materialize)
            if not as_table and self.dag.downstream(step.name):
                self.session.fuse(step.name, bindable_sql(step.sql), reads)
                return None
            # A step nobody reads is still bound as a view, so its SQL errors show.
            try:
                self.session.put(step.name, bindable_sql(step.sql), table=as_table, reads=reads)
            except duckdb.Error as exc:
                raise self._sql_error(step.name, exc) from None
            return self.session.count(step.name) if as_table else None
        inputs = [a for a, b in self.dag.edges if b == step.name]
        frames = {name: self.session.relation(name).pl() for name in inputs}
        result = _call_python(step, frames, params)
        self.session.put_arrow(step.name, _as_arrow(step.name, result))
        return self.session.count(step.name)

    def _check(self, step: CheckStep, result: StepOutcome) -> None:
        failures = run_checks(self.session.con, step.step, step)
        result.rows = None
        if failures:
            result.detail = {"failures": [f.to_dict() for f in failures]}
            if step.warn:
                result.status = "warned"
                result.error = "; ".join(f"{f.rule}: {f.message}" for f in failures)
                return
            raise_for_failures(step, failures)

    def _load(self, step: LoadStep) -> PendingWrite:
        connector = self.session.connector(self.spec.connections[step.to], self.context)
        connector.check_load(step)
        request = WriteRequest(
            load=step,
            connection=self.session.con,
            table_sql=self.session.source(step.step),
            run_id=self.run_id,
        )
        streams = self.session.streams_read_by(step.step)
        try:
            if streams:  # a stream cannot be replayed: one try, and the source's own error
                write: PendingWrite = connector.write(request)
            else:
                write = self.retry.call(lambda: connector.write(request), self._log_retry(step_id(step)))
        except (ConnectorError, duckdb.Error) as exc:
            failure = next((s.failure for s in streams if s.failure is not None), None)
            if isinstance(failure, EtlError) or (streams and isinstance(exc, ConnectorError)):
                # Final: the stream is spent, so nothing here is retried.
                error = failure if isinstance(failure, EtlError) else exc
                assert isinstance(error, EtlError)
                message = str(error).removesuffix(" It will be retried.")
                raise ConnectorError(message, step=error.step) from None
            if not isinstance(exc, ConnectorError):
                raise
            found = self.session.culprit([step.step]) if not exc.transient else None
            if found is None:
                raise
            culprit, error = found
            verb = self.dag.nodes[culprit].verb
            raise PipelineError(f"SQL error in {verb} '{culprit}': {error}", step=culprit) from None
        return write

    def _note_warnings(self, step: ExtractStep, result: StepOutcome) -> None:
        connector = self.session.connector(self.spec.connections[step.source], self.context)
        warnings = connector.take_warnings(step.name)
        if warnings:
            result.status = "warned"
            result.error = "; ".join(warnings)
            result.detail = {**(result.detail or {}), "warnings": warnings}

    def _reads(self, name: str) -> list[str]:
        tables = self.spec.tables()
        return [n for n in self.dag.upstream(name) if n in tables]

    def _sql_error(self, name: str, exc: duckdb.Error) -> PipelineError:
        """A SQL error, blamed on the fused step it really comes from when there is one."""
        found = self.session.culprit(self._reads(name))
        if found is not None:
            culprit, error = found
            verb = self.dag.nodes[culprit].verb
            return PipelineError(f"SQL error in {verb} '{culprit}': {error}", step=culprit)
        return PipelineError(f"SQL error in transform '{name}': {exc}", step=name)

    def _log_retry(self, step: str) -> Callable[[BaseException, int], None]:
        def log(error: BaseException, attempt: int) -> None:
            self._attempts[step] = attempt + 1
            self.log.warning("retrying after a transient error", step=step, attempt=attempt, error=str(error))

        return log


class _OneScan:
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
        reader, self._reader = self._reader, None
        if reader is None:
            self.refuse()
        assert reader is not None

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                yield from reader
            except BaseException as exc:
                self._failure = exc
                raise

        return pa.RecordBatchReader.from_batches(self.schema, batches()).__arrow_c_stream__(requested_schema)


def sql_body(sql: str) -> str:
    """``sql`` without the semicolons (and blank space) it ends with, ready to nest in a query.

    Comments stay (the caller puts the text on lines of its own), and so do the
    lines before, so line numbers in errors still match the user's text.
    """
    data = sql.encode()
    try:
        tokens = duckdb.tokenize(sql)  # positions are byte offsets
    except Exception:  # not tokenisable: DuckDB reports the real error when it runs
        return sql.rstrip().rstrip(";").rstrip()
    for position, kind in reversed(tokens):
        if kind == duckdb.token_type.comment:
            continue
        if kind == duckdb.token_type.operator and data[position : position + 1] == b";":
            data = data[:position] + data[position + 1 :]
            continue
        break
    return data.decode().rstrip()


_SQL_CONTEXT = re.compile(r"\n*LINE (\d+): (.*)\n( *)(\^+)\s*$")


def _in_user_lines(exc: duckdb.Error, first: int, select: str) -> duckdb.Error:
    """``exc`` with its ``LINE n`` counted in ``select`` (which starts on line ``first`` of the
    SQL DuckDB ran), or without the excerpt when it points at SQL the user did not write."""
    message = str(exc)
    match = _SQL_CONTEXT.search(message)
    if match is None:
        return exc
    line = int(match.group(1)) - first + 1
    if not 1 <= line <= select.count("\n") + 1:
        return type(exc)(message[: match.start()])
    caret = len(match.group(3)) - len(f"LINE {match.group(1)}: ")
    label = f"LINE {line}: "
    context = f"\n\n{label}{match.group(2)}\n{' ' * (len(label) + caret)}{match.group(4)}"
    return type(exc)(message[: match.start()] + context)


def _qualified_read(reader: Step, name: str) -> bool:
    """Whether ``reader``'s SQL names step ``name`` with a schema (``main.name``)."""
    if not isinstance(reader, TransformStep) or reader.sql is None:
        return False
    pattern = r'\b(?:main|memory|temp)\s*\.\s*"?' + re.escape(name) + r"\b"
    return re.search(pattern, reader.sql, re.IGNORECASE) is not None


def _blame_fused_step(outcome: RunOutcome, result: StepOutcome, error: EtlError) -> None:
    """A fused step's SQL fails only when a later step reads it: mark the real culprit failed."""
    for earlier in outcome.steps:
        if earlier.step == error.step and earlier.step != result.step:
            earlier.status, earlier.error = "failed", str(error)
            result.status, result.error = "skipped", None


def _call_python(step: TransformStep, frames: dict[str, pl.DataFrame], params: Mapping[str, Any]) -> Any:
    """Run a Python transform; its result is the last expression (or its function's return)."""
    try:
        if step.function is not None:
            return step.function(**frames)
        return _exec_last_expression(step.name, step.python or "", {"pl": pl, **params, **frames})
    except EtlError:
        raise
    except Exception as exc:
        line = _user_line(exc, step.name)
        raise PipelineError(
            f"Python error in transform '{step.name}'{line}: {exc.__class__.__name__}: {exc}",
            step=step.name,
        ) from exc


def _exec_last_expression(name: str, code: str, namespace: dict[str, Any]) -> Any:
    tree = ast.parse(code)
    filename = f"<transform {name}>"
    last = tree.body[-1] if tree.body else None
    if isinstance(last, ast.Expr):
        exec(compile(ast.Module(body=tree.body[:-1], type_ignores=[]), filename, "exec"), namespace)
        return eval(compile(ast.Expression(body=last.value), filename, "eval"), namespace)
    exec(compile(tree, filename, "exec"), namespace)
    if name in namespace:
        return namespace[name]
    raise PipelineError(
        f"Python transform '{name}' must end with an expression that is its result (for example "
        f"'orders.filter(pl.col(\"amount\") > 0)'), or assign it to '{name}'.",
        step=name,
    )


def _user_line(exc: BaseException, name: str) -> str:
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == f"<transform {name}>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" at line {line}" if line else ""


def _as_arrow(name: str, result: Any) -> pa.Table | pa.RecordBatchReader:
    if isinstance(result, pl.LazyFrame):
        result = result.collect()
    if isinstance(result, pl.DataFrame):
        return result.to_arrow()
    if isinstance(result, pa.Table | pa.RecordBatchReader):
        return result
    if isinstance(result, duckdb.DuckDBPyRelation):
        return result.to_arrow_table()
    raise PipelineError(
        f"Python transform '{name}' returned {type(result).__name__}; return a Polars DataFrame "
        "(or LazyFrame, or an Arrow table).",
        step=name,
    )
