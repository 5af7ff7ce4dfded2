"""Running a pipeline's steps in one DuckDB session.

The runner walks the DAG in order and keeps each step's output the way
``engine/plan.py`` decides (a table, SQL fused into its one reader,
or a one-pass stream) in the ``engine/session.py`` session. Loads are
staged as they come and committed together only when every step has
succeeded, so a failed run leaves every target exactly as it was.
"""

from __future__ import annotations

import fnmatch
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import duckdb

from etl_nb._logging import get_logger
from etl_nb.connectors import (
    Connector,
    ConnectorContext,
    PendingWrite,
    ReadRequest,
    WriteRequest,
    connector_class,
)
from etl_nb.engine.cache import RunCache
from etl_nb.engine.checks import raise_for_failures, run_checks
from etl_nb.engine.dag import Dag, bindable_sql
from etl_nb.engine.drift import compare
from etl_nb.engine.plan import Materialize, plan_run
from etl_nb.engine.python_step import run_python
from etl_nb.engine.session import Session
from etl_nb.engine.sqltext import csv_value_error, quote
from etl_nb.errors import ConnectorError, EtlError, MissingParameter, PipelineError, SpecError, scrub_chain
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

if TYPE_CHECKING:  # a files pipeline never loads pyarrow (memory: docs/engine.md)
    import pyarrow as pa

_Sent = TypeVar("_Sent")


def _rows_sent(counts: Mapping[str, Any]) -> int | None:
    """The rows a dry-run load would send, from its counts."""
    if "inserted" in counts:
        return int(counts["inserted"]) + int(counts["updated"]) + int(counts["unchanged"])
    for key in ("rows_added", "rows_after", "rows"):
        if key in counts:
            return int(counts[key])
    return None


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
        dry_run: bool = False,
        cache: RunCache | None = None,
    ) -> None:
        self.dag = dag
        self.dry_run = dry_run  # every load says what it would do and writes nothing
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
        self._schemas: Mapping[str, tuple[str, Mapping[str, str]]] = {}
        self._results: dict[str, StepResult] = {}  # this run's outcomes so far, by node
        # A fused extract's columns, when its connector bound its SELECT already (a CSV sniff saved).
        self._scanned: dict[str, dict[str, str] | None] = {}

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
        schemas: Mapping[str, tuple[str, Mapping[str, str]]] | None = None,
    ) -> RunOutcome:
        """Run ``nodes`` (in DAG order) with ``params``; commit loads only if all succeed.

        ``schemas`` holds, per extract, the run id and columns of its last good run:
        a change is schema drift (``engine/drift.py``).
        """
        self._schemas = schemas or {}
        wanted = set(nodes)
        self._plan = plan_run(
            self.dag,
            wanted,
            materialize=materialize,
            scans_rows_once=self._scans_rows_once,
            keep=self.cache.tables() if self.cache else (),
        )
        order = [n for n in self.dag.order() if n in wanted]
        self._results = {}
        self._scanned = {}
        outcome = RunOutcome(steps=[])
        pending: list[PendingWrite] = []
        staged: list[tuple[StepResult, PendingWrite]] = []
        try:
            self._bind_params(order, params)
            self._check_target_names(order)
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
                self._results[node] = result
                if len(pending) > before:
                    staged.append((result, pending[-1]))
                outcome.steps.append(result)
                if self.listener:
                    self.listener.step_finished(result)
            if outcome.error is None:
                self._commit(staged, pending, outcome)
        except EtlError as exc:  # a parameter problem before any step ran
            outcome.error = scrub_chain(exc)
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
                outcome.error = scrub_chain(error)
                return
            pending[:] = [w for w in pending if w is not write]
            counts = getattr(write, "counts", None)  # optional: what a merge did (see PendingWrite)
            if counts:
                result.detail = {**(result.detail or {}), **counts}

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
                self._note_drift(step, result)
            elif isinstance(step, TransformStep):
                result.rows = self._transform(step, params)
            elif isinstance(step, CheckStep):
                self._check(step, result)
            elif step.dry_run or self.dry_run:
                counts = self._send(step, lambda c, r: c.preview(r))
                result.detail = {"dry_run": True, **counts}
                result.rows = _rows_sent(counts)
            else:
                write = self._send(step, lambda c, r: c.write(r))
                pending.append(write)
                result.rows = write.rows
        except EtlError as exc:
            if exc.step is None:
                exc.step = node
            outcome.error = scrub_chain(exc)
            result.status, result.error = "failed", str(exc)
            if self.session.objects.get(exc.step) == "fused":
                _blame_fused_step(outcome, result, exc)
        except Exception as exc:
            # A bug in etl_nb: record it, then let the caller show the traceback (secrets masked).
            outcome.error = scrub_chain(exc)
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
                self._scanned[step.name] = connector.scanned_columns(select)
                return
            try:
                self.session.put(step.name, select, table=storage == "table")
            except duckdb.Error as exc:
                csv = self._csv_error(str(exc), step.name)
                if csv is not None:
                    raise csv from None
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
        import pyarrow as pa

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
                self.session.fuse(step.name, bindable_sql(step.sql), reads, counted=True)
                return None
            # Stored, also when nobody reads it: a run succeeds only if every step's SQL ran.
            try:
                rows = self.session.put(step.name, bindable_sql(step.sql), table=True, reads=reads)
            except duckdb.Error as exc:
                raise self._sql_error(step.name, exc) from None
            self._count_read_steps(reads)
            return rows if rows is not None else self.session.count(step.name)
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

    def _send(self, step: LoadStep, do: Callable[[Connector, WriteRequest], _Sent]) -> _Sent:
        """``do`` the load (``write`` it, or ``preview`` it for a dry-run) with retries and the
        fused step's own SQL error."""
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
            # Binding the step's columns may already fail (a fused transform's SQL): blamed below.
            self._check_column_names(step, connector.kind, request)
            if streams:  # a stream cannot be replayed: one try, and the source's own error
                write = do(connector, request)
            else:
                write = self.retry.call(lambda: do(connector, request), self._log_retry(step_id(step)))
        except (ConnectorError, duckdb.Error) as exc:
            csv = self._csv_error(str(exc), step.step)
            if csv is not None:  # a value of a CSV file the load reads: the extract's mistake
                raise csv from None
            failure = next((s.failure for s in streams if s.failure is not None), None)
            if isinstance(failure, EtlError) or (streams and isinstance(exc, ConnectorError)):
                # Final: the stream is spent, so nothing here is retried.
                error = failure if isinstance(failure, EtlError) else exc
                assert isinstance(error, EtlError)
                message = str(error).removesuffix(" It will be retried.")
                blamed = error.step if error is failure else step_id(step)
                raise ConnectorError(message, step=blamed) from None
            if not isinstance(exc, ConnectorError):
                raise
            found = self.session.culprit([step.step]) if not exc.transient else None
            if found is None:
                # The sink's own failure (its connection refused, say): the load's, not its input's.
                exc.step = step_id(step)
                raise
            culprit, error = found
            verb = self.dag.nodes[culprit].verb
            raise PipelineError(f"SQL error in {verb} '{culprit}': {error}", step=culprit) from None
        # A write knows its rows; a dry-run's counts say what it would send.
        sent = _rows_sent(write) if isinstance(write, Mapping) else getattr(write, "rows", None)
        self._count_read_steps([step.step], direct_rows=sent)
        return write

    def _count_read_steps(self, reads: list[str], *, direct_rows: int | None = None) -> None:
        """Give rows to the steps that the statement just run read without storing them.

        A fused or streamed step runs inside the statement that reads it, so its
        rows are counted there: a stream counts the batches it hands over; a fused
        transform (a MATERIALIZED CTE) and a file scan take their rows from DuckDB's
        profile of the statement; a step a load reads directly has the rows the load
        wrote (``direct_rows``) if the profile did not give them. Nothing is read again.
        """
        fused = self.session.fused_upstream(reads)
        if not fused:  # nothing ran inside the statement: its profile has nothing to give
            return
        scans, counted = self.session.last_profile()
        for name in fused:
            result = self._results.get(name)
            if result is None or result.rows is not None or not result.ran:
                continue
            stream = next((s for s in self.session.streams_read_by(name) if s.name == name), None)
            if stream is not None:
                result.rows = stream.rows if stream.consumed else None
            elif name in counted:
                result.rows = counted[name]
            elif name in reads and direct_rows is not None:
                result.rows = direct_rows
            elif isinstance(self.dag.nodes[name], ExtractStep):
                result.rows = self._scanned_rows(name, scans)

    def _scanned_rows(self, name: str, scans: list[dict[str, Any]]) -> int | None:
        """The rows fused extract ``name`` read, from the profile's scan of its files."""
        select = self.session.fused_sql(name) or ""
        for scan in scans:
            info = scan.get("extra_info") or {}
            files = str(info.get("Filename(s)", "")).split(", ")[0]
            if not files or files not in select:
                continue
            if not info.get("Filters") and not info.get("Dynamic Filters"):
                return int(scan.get("intermediate_rows") or 0)
            if info.get("Function") == "READ_PARQUET":  # filters pushed into the scan: count
                # from the files' metadata instead, which DuckDB answers without reading rows
                cursor = self.session.con.cursor()
                try:
                    return int(cursor.execute(f"SELECT count(*) FROM ({select})").fetchall()[0][0])
                finally:
                    cursor.close()
            return None
        return None

    def _name_limit(self, load: LoadStep) -> tuple[str, int] | None:
        """The database and its longest name in bytes, for a load into one that cuts longer names."""
        connection = self.spec.connections.get(load.to)
        if connection is None:
            return None
        limit = NAME_BYTES.get(connection.type)
        return (_DATABASE_NAMES[connection.type], limit) if limit is not None else None

    def _check_target_names(self, order: list[str]) -> None:
        """Refuse, before any step runs, a table name the target database would silently cut."""
        for node in order:
            load = self.dag.nodes[node]
            if not isinstance(load, LoadStep) or load.table is None:
                continue
            found = self._name_limit(load)
            if found is None:
                continue
            database, limit = found
            for part in _name_parts(load.table):
                if len(part.encode()) > limit:
                    raise SpecError(
                        f"Load '{load.step}': the name '{part}' in --table {load.table} is "
                        f"{len(part.encode())} bytes long, and {database} keeps only the first "
                        f"{limit} (it would cut the name, and later loads would not find the table). "
                        "Use a shorter --table.",
                        step=node,
                    )

    def _check_column_names(self, load: LoadStep, kind: str, request: WriteRequest) -> None:
        """Refuse a column the target database would silently cut, before anything is written."""
        limit = NAME_BYTES.get(kind)
        if limit is None:
            return
        try:
            columns = request.relation.columns
        except duckdb.Error as exc:  # the step's SQL does not bind: the caller blames the step it is in
            raise ConnectorError(
                f"Cannot read the rows of step '{load.step}': {exc}", step=load.step
            ) from None
        for column in columns:
            if len(column.encode()) > limit:
                raise SpecError(
                    f"Load '{load.step}': column '{column}' is {len(column.encode())} bytes long, and "
                    f"{_DATABASE_NAMES[kind]} keeps only the first {limit}. Rename it in step "
                    f"'{load.step}' (SELECT ... AS shorter_name).",
                    step=step_id(load),
                )

    def _note_warnings(self, step: ExtractStep, result: StepResult) -> None:
        connector = self.session.connector(self.spec.connections[step.source], self.context)
        warnings = connector.take_warnings(step.name)
        if warnings:
            result.status = "warned"
            result.error = "; ".join(warnings)
            result.detail = {**(result.detail or {}), "warnings": warnings}

    def _note_drift(self, step: ExtractStep, result: StepResult) -> None:
        """Keep the extract's columns; flag a change since its last good run (or fail the run)."""
        columns = self._scanned.pop(step.name, None)
        if columns is None:
            relation = self.session.relation(step.name)
            columns = {name: str(kind) for name, kind in zip(relation.columns, relation.types, strict=True)}
        result.detail = {**(result.detail or {}), "columns": columns}
        last = self._schemas.get(step.name)
        if last is None:
            return
        drift = compare(last[0], last[1], columns)
        if not drift:
            return
        result.detail["drift"] = drift.to_dict()
        if step.on_drift == "fail":
            raise PipelineError(
                f"Extract '{step.name}' changed since run {drift.since_run} ({drift.describe()}), so the "
                "run stops before any load (--on-drift fail). Fix the source, or use --on-drift warn to "
                "accept the change.",
                step=step.name,
            )
        message = f"schema drift since run {drift.since_run}: {drift.describe()}"
        result.status = "warned"
        result.error = "; ".join([*filter(None, [result.error]), message])
        result.detail["warnings"] = [*result.detail.get("warnings", []), message]

    def _reads(self, name: str) -> list[str]:
        tables = self.spec.tables()
        return [n for n in self.dag.upstream(name) if n in tables]

    def _sql_error(self, name: str, exc: duckdb.Error) -> EtlError:
        """A SQL error, blamed on the fused step it really comes from when there is one."""
        csv = self._csv_error(str(exc), name)
        if csv is not None:
            return csv
        found = self.session.culprit(self._reads(name))
        if found is not None:
            culprit, error = found
            verb = self.dag.nodes[culprit].verb
            return PipelineError(f"SQL error in {verb} '{culprit}': {error}", step=culprit)
        return PipelineError(f"SQL error in transform '{name}': {exc}", step=name)

    def _csv_error(self, message: str, node: str) -> ConnectorError | None:
        """A CSV value that does not convert, blamed on the extract that reads its file.

        DuckDB reports it in whichever statement first reads the rows (a load,
        a transform), in twenty lines; the user's mistake is in the extract.
        """
        problem = csv_value_error(message)
        if problem is None:
            return None
        paths = {
            n: step.path
            for n in sorted({node, *self.dag.ancestors([node])})
            if isinstance(step := self.dag.nodes.get(n), ExtractStep) and step.path is not None
        }
        file = PurePath(problem.file)
        matching = [
            n
            for n, path in paths.items()
            if file.match(path) or fnmatch.fnmatch(file.name, PurePath(path).name)
        ]
        chosen = (matching or list(paths) or [node])[0]
        try:
            shown = Path(problem.file).resolve().relative_to(self.context.base_dir.resolve()).as_posix()
        except ValueError:
            shown = problem.file
        value = f"'{problem.value}'" if problem.value is not None else "a value"
        kind = f"of type {problem.type}" if problem.type else "of the column's type"
        return ConnectorError(
            f"Extract '{chosen}' cannot read '{shown}' line {problem.line:,}, column '{problem.column}': "
            f"{value} is not {kind} (the type DuckDB guessed from the first 20,480 rows). If it means "
            f"missing, add it to the markers: options: {{nullstr: ['NA', '', ...]}}; else set the "
            f"column's type: options: {{types: {{{problem.column}: VARCHAR}}}}.",
            step=chosen,
        )

    def _log_retry(self, step: str) -> Callable[[BaseException, int], None]:
        def log(error: BaseException, attempt: int) -> None:
            self._attempts[step] = attempt + 1
            self.log.warning("retrying after a transient error", step=step, attempt=attempt, error=str(error))

        return log


# Databases that silently cut longer identifiers (in bytes), by connector kind; a name they
# cut creates a table that later loads never find again.
NAME_BYTES = {"postgres": 63}
_DATABASE_NAMES = {"postgres": "PostgreSQL"}


def _name_parts(table: str) -> list[str]:
    """The parts of ``schema.table`` (a part in double quotes may hold dots)."""
    parts, current, quoted = [], "", False
    for char in table:
        if char == '"':
            quoted = not quoted
        elif char == "." and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def _blame_fused_step(outcome: RunOutcome, result: StepResult, error: EtlError) -> None:
    """A fused step's SQL fails only when a later step reads it: mark the real culprit failed."""
    for earlier in outcome.steps:
        if earlier.step == error.step and earlier.step != result.step:
            earlier.status, earlier.error = "failed", str(error)
            result.status, result.error = "skipped", None
