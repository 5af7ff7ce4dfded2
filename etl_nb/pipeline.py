"""The Python API: build a pipeline in code, run it, read its tables.

The magics, the CLI and exported notebooks all drive a pipeline through
this class, so there is one way a pipeline runs and is recorded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from etl_nb.connectors import ConnectorContext
from etl_nb.engine.cache import RunCache, check_resumable
from etl_nb.engine.cache_file import OutputCache, cache_path
from etl_nb.engine.dag import Dag, build_dag
from etl_nb.engine.plan import Materialize
from etl_nb.engine.runner import RunListener, Runner
from etl_nb.engine.session import Session
from etl_nb.errors import EtlError, PipelineError, SpecError
from etl_nb.results import RunResult, StepResult
from etl_nb.retry import RetryPolicy
from etl_nb.spec import (
    CheckStep,
    ConnectionSpec,
    ExtractStep,
    LoadMode,
    LoadStep,
    PipelineSpec,
    Step,
    TransformStep,
    check_rules,
    infer_connection_type,
    step_id,
    validated,
)
from etl_nb.store import RUN_ID_ENV, RunRecorder, RunStore, new_run_id

__all__ = ["RUN_ID_ENV", "Pipeline", "RunResult", "StepResult", "new_run_id"]


class Pipeline:
    """An ETL pipeline: connections and steps, run in DAG order in one DuckDB session.

    ``base_dir`` anchors relative folders and holds the ``.env`` file read for
    ``${VAR}`` references (default: the current folder). ``store`` is a
    ``RunStore`` or its URL (default ``ETL_NB_STORE_URL`` or the project's
    SQLite file); ``database``, ``memory_limit`` and ``temp_directory`` set
    up the DuckDB session (``memory_limit="2GB"`` spills to ``temp_directory``).
    """

    def __init__(
        self,
        name: str,
        *,
        base_dir: str | Path | None = None,
        store: RunStore | str | None = None,
        database: str = ":memory:",
        memory_limit: str | None = None,
        temp_directory: str | Path | None = None,
        retry: RetryPolicy | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> None:
        try:
            self.spec = PipelineSpec(name=name, parameters=dict(parameters or {}))
        except Exception:
            raise SpecError(
                f"'{name}' is not a valid pipeline name: use letters, digits and underscores."
            ) from None
        self.base_dir = Path(base_dir or Path.cwd()).resolve()
        self._store = store
        self.retry = retry or RetryPolicy()
        self._session_options: dict[str, Any] = {
            "database": database,
            "memory_limit": memory_limit,
            "temp_directory": temp_directory,
        }
        self._session: Session | None = None

    @classmethod
    def from_spec(cls, spec: PipelineSpec, **options: Any) -> Pipeline:
        """A pipeline running an existing spec (from the notebook reader, say)."""
        pipeline = cls(spec.name, **options)
        pipeline.spec = spec
        return pipeline

    @property
    def name(self) -> str:
        """The pipeline's name, used in the run store."""
        return self.spec.name

    def __repr__(self) -> str:
        steps = [step_id(s) for s in self.spec.steps]
        return f"Pipeline({self.name!r}, connections={list(self.spec.connections)}, steps={steps})"

    # --- declaring ------------------------------------------------------------------------

    def connect(
        self, name: str, url: str | None = None, *, type: str | None = None, **options: Any
    ) -> Pipeline:
        """Declare connection ``name``: a database URL, an http(s) base URL or a folder."""
        url = url or options.pop("url", None)
        if not url:
            raise SpecError(f"Connection '{name}' needs a URL or a folder.", step=name)
        return self.add(
            ConnectionSpec(name=name, type=type or infer_connection_type(url), url=url, options=options)
        )

    def extract(  # noqa: PLR0913 - its keywords mirror the grammar's options (DESIGN.md section 3)
        self,
        name: str,
        source: str,
        query: str | None = None,
        *,
        path: str | None = None,
        format: str | None = None,
        options: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        records: str | None = None,
        paginate: Mapping[str, Any] | None = None,
        incremental: str | None = None,
        cache_ttl: str | None = None,
    ) -> Pipeline:
        """Declare an extract from connection ``source`` into table ``name``."""
        return self.add(
            validated(
                ExtractStep,
                name=name,
                source=source,
                query=query,
                path=path,
                format=format,
                options=dict(options or {}),
                params=dict(params or {}),
                records=records,
                paginate=dict(paginate) if paginate else None,
                incremental=incremental,
                cache_ttl=cache_ttl,
            )
        )

    def transform(
        self, name: str, sql: str | None = None, *, python: str | Callable[..., Any] | None = None
    ) -> Pipeline:
        """Declare a transform: DuckDB ``sql``, or ``python`` code (or a function taking step names)."""
        if callable(python):
            return self.add(validated(TransformStep, name=name, function=python))
        return self.add(validated(TransformStep, name=name, sql=sql, python=python))

    def check(self, step: str, rules: list[Any], *, warn: bool = False) -> Pipeline:
        """Declare data checks on ``step`` (the grammar's YAML list, as Python objects)."""
        return self.add(validated(CheckStep, step=step, rules=check_rules(rules, step), warn=warn))

    def load(
        self,
        step: str,
        to: str,
        *,
        table: str | None = None,
        path: str | None = None,
        mode: LoadMode = "append",
        key: str | Iterable[str] | None = None,
    ) -> Pipeline:
        """Declare a load of ``step`` into connection ``to`` (``table=`` or ``path=``)."""
        keys = [k.strip() for k in key.split(",")] if isinstance(key, str) else list(key or [])
        return self.add(validated(LoadStep, step=step, to=to, table=table, path=path, mode=mode, key=keys))

    def add(self, statement: ConnectionSpec | Step) -> Pipeline:
        """Add a parsed statement (from ``parse_cell``), replacing one with the same identity."""
        self.spec.add(statement)
        return self

    # --- running --------------------------------------------------------------------------

    @property
    def session(self) -> Session:
        """The DuckDB session that holds this pipeline's tables (created on first use)."""
        if self._session is None:
            self._session = Session(
                self._session_options["database"],
                memory_limit=self._session_options["memory_limit"],
                temp_directory=self._session_options["temp_directory"],
            )
        return self._session

    @property
    def store(self) -> RunStore:
        """The run store runs are recorded in."""
        if not isinstance(self._store, RunStore):
            self._store = RunStore(self._store)
        return self._store

    def dag(self) -> Dag:
        """The pipeline's graph, with every dependency inferred and checked."""
        return build_dag(self.spec)

    def run(  # noqa: PLR0913 - the run's options, all keyword-only (DESIGN.md section 3)
        self,
        params: Mapping[str, Any] | None = None,
        *,
        only: Iterable[str] | None = None,
        from_step: str | None = None,
        steps: Iterable[str] | None = None,
        materialize: Materialize = "auto",
        listener: RunListener | None = None,
        notebook: str | None = None,
        trigger: str = "manual",
        run_id: str | None = None,
        cache: bool = False,
        resume: str | None = None,
    ) -> RunResult:
        """Run the pipeline (or part of it) and record the run in the store.

        ``params`` fill ``{{ name }}`` (over the pipeline's parameter defaults).
        ``only`` runs the named steps with their checks and loads; ``from_step``
        runs a step and everything after it; ``steps`` runs exactly these step
        ids (as ``RunResult.steps`` names them). A failed run returns
        ``status="failed"`` and changes no target; ``raise_for_status()`` raises.
        ``cache=True`` reuses the output of every step whose fingerprint is
        unchanged; ``resume=RUN_ID`` takes the steps that succeeded in that failed
        run from the outputs it kept (``docs/cache.md``); each step's
        ``detail`` then says what was decided and why.
        """
        values = {**self.spec.parameters, **(params or {})}
        store = self.store
        if resume is not None:  # a bad id is refused before anything is recorded
            resume = check_resumable(store, self.name, resume)
        # Inside `etl-nb run`, steps are recorded into the notebook's run.
        recorder = RunRecorder.start(
            store, self.name, values, run_id=run_id, notebook=notebook, trigger=trigger
        )
        started = dt.datetime.now(dt.UTC)
        steps_done: list[StepResult] = []
        error: BaseException | None = None
        try:
            dag = self.dag()
            if isinstance(only, str):  # run(only="orders,revenue") as on the %etl run line
                only = [name.strip() for name in only.split(",") if name.strip()]
            nodes = self._select(dag, only, from_step, steps)
            watermarks = {
                s.name: store.watermark(self.name, s.name)
                for s in self.spec.steps
                if isinstance(s, ExtractStep) and s.incremental
            }
            step_cache = RunCache(
                self.spec,
                dag,
                self.session,
                self._context(),
                store,
                OutputCache(cache_path(self.base_dir)),
                recorder.run_id,
                use_cache=cache,
                resume=resume,
            )
            step_cache.prepare([n for n in dag.order() if n in set(nodes)], values, watermarks)
            runner = Runner(
                self.spec,
                dag,
                self.session,
                self._context(),
                retry=self.retry,
                listener=listener,
                run_id=recorder.run_id,
                cache=step_cache,
            )
            outcome = runner.run(nodes, values, materialize=materialize, watermarks=watermarks)
            steps_done, error = outcome.steps, outcome.error
            step_cache.finish(steps_done, failed=error is not None)
            if error is None:
                # A mark moves only when every step downstream of its extract ran too:
                # rows an unrun load never wrote would otherwise be skipped for good.
                ran = set(nodes)
                marks = {n: m for n, m in outcome.watermarks.items() if dag.descendants([n]) <= ran}
                store.set_watermarks(self.name, recorder.run_id, marks)
        except EtlError as exc:
            error = exc
        except BaseException as exc:
            recorder.finish(steps_done, error=f"internal error: {exc!r}")
            raise
        status = recorder.finish(steps_done, error=str(error) if error else None)
        if error is not None and not isinstance(error, EtlError):
            raise error
        return RunResult(
            run_id=recorder.run_id,
            pipeline=self.name,
            status=status,
            steps={s.step: s for s in steps_done},
            seconds=(dt.datetime.now(dt.UTC) - started).total_seconds(),
            error=str(error) if error else None,
            exception=error,
        )

    def run_step(self, node: str, params: Mapping[str, Any] | None = None) -> StepResult:
        """Run one step now against the outputs already in the session (a notebook cell).

        The step's table is materialised for a preview; nothing is recorded in
        the store, unless this is part of an outer recorded run (``etl-nb run``).
        Raises the step's ``EtlError`` if it fails.
        """
        dag = self.dag()
        if node not in dag.nodes:
            raise PipelineError(f"There is no step '{node}'.", step=node)
        for upstream in dag.upstream(node):
            step = dag.nodes[upstream]
            if isinstance(step, ExtractStep | TransformStep) and not self.session.has(upstream):
                raise PipelineError(
                    f"Step '{node}' reads '{upstream}', which has not run in this session yet. "
                    f"Run its cell first, or run everything with %etl run.",
                    step=node,
                )
        values = {**self.spec.parameters, **(params or {})}
        runner = Runner(self.spec, dag, self.session, self._context(), retry=self.retry, run_id=new_run_id())
        outcome = runner.run([node], values, materialize="all")
        outer = RunRecorder.outer(lambda: self.store)
        if outer is not None:
            outer.record(outcome.steps)
        if outcome.error is not None:
            raise outcome.error
        return outcome.steps[0]

    def table(self, name: str) -> pl.DataFrame:
        """The full output of step ``name`` as a Polars DataFrame."""
        if name not in self.spec.tables():
            raise PipelineError(f"There is no step '{name}' that makes a table.", step=name)
        if not self.session.has(name):
            raise PipelineError(f"Step '{name}' has not run yet: call run() first.", step=name)
        frame: pl.DataFrame = self.session.relation(name).pl()
        return frame

    def reset(self) -> None:
        """Drop every table of the session (declarations stay)."""
        if self._session is not None:
            self._session.close()
            self._session = None

    def close(self) -> None:
        """Release the DuckDB session and open connections."""
        self.reset()

    def _context(self) -> ConnectorContext:
        return ConnectorContext(base_dir=self.base_dir, env_file=self.base_dir / ".env")

    def _select(
        self, dag: Dag, only: Iterable[str] | None, from_step: str | None, steps: Iterable[str] | None = None
    ) -> list[str]:
        if only is None and from_step is None and steps is None:
            return list(dag.nodes)
        tables = self.spec.tables()
        chosen: set[str] = set()
        for node in steps or []:
            if node not in dag.nodes:
                raise PipelineError(f"There is no step '{node}' to run.", step=node)
            chosen.add(node)
        chosen |= dag.select(only, from_step)
        for node in chosen:
            for upstream in dag.upstream(node):
                if upstream not in chosen and upstream in tables and not self.session.has(upstream):
                    raise PipelineError(
                        f"Step '{node}' reads '{upstream}', which is not part of this run and has no "
                        f"output in this session. Add it to --only or run everything.",
                        step=node,
                    )
        return [n for n in dag.nodes if n in chosen]
