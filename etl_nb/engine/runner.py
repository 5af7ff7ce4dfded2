"""Running a pipeline's steps in one DuckDB session.

The runner walks the DAG in order and keeps each step's output the way
``engine/plan.py`` decides (a table, a view, SQL fused into its one reader,
or a one-pass stream) in the ``engine/session.py`` session. Loads are
staged as they come and committed together only when every step has
succeeded, so a failed run leaves every target exactly as it was.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import duckdb
import pyarrow as pa

from etl_nb._logging import get_logger
from etl_nb.connectors import (
    ConnectorContext,
    PendingWrite,
    ReadRequest,
    WriteRequest,
    connector_class,
)
from etl_nb.engine.cache import RunCache
from etl_nb.engine.checks import raise_for_failures, run_checks
from etl_nb.engine.dag import Dag, bindable_sql
from etl_nb.engine.plan import Materialize, plan_run
from etl_nb.engine.python_step import run_python
from etl_nb.engine.session import Session
from etl_nb.engine.sqltext import quote
from etl_nb.errors import ConnectorError, EtlError, MissingParameter, PipelineError
from etl_nb.results import RunStatus, StepResult, run_status
from etl_nb.retry import RetryPolicy
from etl_nb.spec import (
    AUTO_CONNECTION_TYPE,
    CheckStep,
    ExtractStep,
    LoadStep,
    PipelineSpec,
    Step,
    TransformStep,
    step_id,
)


class RunListener(Protocol):
    """Told about each step as a run goes (progress bars, logs)."""

    def step_started(self, step: str, index: int, total: int) -> None:
        """``step`` (the ``index``-th of ``total``) is starting."""

    def step_finished(self, outcome: StepResult) -> None:
        """``outcome.step`` has ended."""


@dataclass
class RunOutcome:
    """Every step's outcome, the first error, and the new incremental marks."""

    steps: list[StepResult]
    error: BaseException | None = None
    watermarks: dict[str, tuple[str, Any]] = field(default_factory=dict)

    @property
    def status(self) -> RunStatus:
        """``failed`` if the run ended with an error or any step failed."""
        return run_status(self.steps, failed=self.error is not None)


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
        cache: RunCache | None = None,
    ) -> None:
        self.dag = dag
        self.cache = cache  # decides which steps are reused instead of run (engine/cache.py)
        self.session = session
        self.context = context
        self.spec = self._typed(spec)
        self.retry = retry or RetryPolicy()
        self.listener = listener
        self.run_id = run_id or uuid.uuid4().hex
        self._plan = plan_run(dag, dag.nodes)
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
        self._plan = plan_run(
            self.dag,
            wanted,
            materialize=materialize,
            scans_rows_once=self._scans_rows_once,
            keep=self.cache.tables() if self.cache else (),
        )
        order = [n for n in self.dag.order() if n in wanted]
        outcome = RunOutcome(steps=[])
        pending: list[PendingWrite] = []
        staged: list[tuple[StepResult, PendingWrite]] = []
        try:
            self._bind_params(order, params)
            for index, node in enumerate(order):
                step = self.dag.nodes[node]
                if outcome.error is not None:
                    outcome.steps.append(StepResult(node, step.verb, "skipped"))
                    continue
                if self.listener:
                    self.listener.step_started(node, index, len(order))
                before = len(pending)
                result = self.cache.reuse(node) if self.cache else None
                if result is None:
                    result = self._run_node(node, step, params, watermarks or {}, outcome, pending)
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
            if self.cache and outcome.error is not None:
                self.cache.drain_unread()  # a failed run keeps its database and API extracts
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
        staged: list[tuple[StepResult, PendingWrite]],
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
        watermarks: Mapping[str, Any],
        outcome: RunOutcome,
        pending: list[PendingWrite],
    ) -> StepResult:
        started = time.perf_counter()
        result = StepResult(node, step.verb, "success")
        log = self.log.bind(step=node)
        try:
            if isinstance(step, ExtractStep):
                result.rows = self._extract(step, params, watermarks, outcome)
                self._note_warnings(step, result)
            elif isinstance(step, TransformStep):
                result.rows = self._transform(step, params)
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

    def _scans_rows_once(self, load: LoadStep) -> bool:
        """Whether ``load``'s sink reads its rows in one pass (so an extract may stream into it)."""
        try:
            return connector_class(self.spec.connections[load.to].type).scans_rows_once
        except (EtlError, KeyError):  # an unknown or unresolved kind: the load itself says why
            return False

    def _extract(
        self,
        step: ExtractStep,
        params: Mapping[str, Any],
        watermarks: Mapping[str, Any],
        outcome: RunOutcome,
    ) -> int | None:
        connector = self.session.connector(self.spec.connections[step.source], self.context)
        connector.check_extract(step)
        since = watermarks.get(step.name) if step.incremental else None
        request = ReadRequest(extract=step, params={p: params[p] for p in step.parameters}, since=since)

        def extract() -> None:
            select = connector.scan(request, self.session.con)
            if select is None:
                if self._plan.storage(step.name, batches=True) == "stream":
                    # Transient errors while the rows flow surface in the reading step and
                    # are not retried there: a stream cannot be replayed (see OneScan).
                    reader = connector.read(request)
                    if self.cache:  # a copy of the rows as they pass, kept if the run fails
                        reader = self.cache.spool(step.name, reader)
                    self.session.stream(step.name, reader)
                else:
                    self._put_stream(step.name, connector.read(request))
                return
            if since is not None and step.incremental:
                self.session.bind({f"etl_since_{step.name}": since})
                select = (
                    f"SELECT * FROM ({select}) "
                    f"WHERE {quote(step.incremental)} > getvariable('etl_since_{step.name}')"
                )
            storage = self._plan.storage(step.name)
            if storage == "fused":
                self.session.fuse(step.name, select)
                return
            try:
                self.session.put(step.name, select, table=storage == "table")
            except duckdb.Error as exc:
                raise ConnectorError(
                    f"Cannot read '{step.name}' from connection '{step.source}': {exc}", step=step.name
                ) from None

        self.retry.call(extract, self._log_retry(step.name))
        if step.incremental:
            self._advance_watermark(step, since, outcome)
        return self.session.count(step.name) if self.session.objects[step.name] == "table" else None

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

    def _transform(self, step: TransformStep, params: Mapping[str, Any]) -> int | None:
        if step.sql is not None:
            reads = self._reads(step.name)
            storage = self._plan.storage(step.name)
            if storage == "fused":
                self.session.fuse(step.name, bindable_sql(step.sql), reads)
                return None
            # A step nobody reads is still bound as a view, so its SQL errors show.
            try:
                self.session.put(step.name, bindable_sql(step.sql), table=storage == "table", reads=reads)
            except duckdb.Error as exc:
                raise self._sql_error(step.name, exc) from None
            return self.session.count(step.name) if storage == "table" else None
        inputs = [a for a, b in self.dag.edges if b == step.name]
        frames = {name: self.session.relation(name).pl() for name in inputs}
        self.session.put_arrow(step.name, run_python(step, frames, params))
        return self.session.count(step.name)

    def _check(self, step: CheckStep, result: StepResult) -> None:
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

    def _note_warnings(self, step: ExtractStep, result: StepResult) -> None:
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


def _blame_fused_step(outcome: RunOutcome, result: StepResult, error: EtlError) -> None:
    """A fused step's SQL fails only when a later step reads it: mark the real culprit failed."""
    for earlier in outcome.steps:
        if earlier.step == error.step and earlier.step != result.step:
            earlier.status, earlier.error = "failed", str(error)
            result.status, result.error = "skipped", None
