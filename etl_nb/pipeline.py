"""The Python API: build a pipeline in code, run it, read its tables.

The magics, the CLI and exported notebooks all drive a pipeline through
this class, so there is one way a pipeline runs and is recorded.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, get_args

import duckdb

from etl_nb.connectors import ConnectorContext
from etl_nb.engine.cache import RunCache, check_resumable
from etl_nb.engine.cache_file import OutputCache, cache_path
from etl_nb.engine.dag import Dag, build_dag
from etl_nb.engine.plan import Materialize
from etl_nb.engine.runner import RunListener, Runner
from etl_nb.engine.session import Session
from etl_nb.errors import EtlError, PipelineError, SpecError, cut, did_you_mean, scrub_chain
from etl_nb.lineage import RunLineage
from etl_nb.results import RunResult, StepResult
from etl_nb.retry import RetryPolicy
from etl_nb.spec import (
    DEFAULT_LOAD_MODE,
    CheckStep,
    ConnectionSpec,
    DriftPolicy,
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
from etl_nb.store import RUN_ID_ENV, RunRecorder, RunStore, default_store_url, new_run_id

if TYPE_CHECKING:  # only for annotations: .pl() imports it when asked
    import polars as pl

__all__ = ["DRY_RUN_ENV", "RUN_ID_ENV", "Pipeline", "RunResult", "StepResult", "new_run_id"]

# Set by `etl-nb run --dry-run` for the kernel: every load of every run there is a dry-run.
DRY_RUN_ENV = "ETL_NB_DRY_RUN"


def dry_run_everywhere() -> bool:
    """Whether this process runs every load as a dry-run (inside `etl-nb run --dry-run`)."""
    return os.environ.get(DRY_RUN_ENV, "") not in ("", "0")


_T = TypeVar("_T")


class Pipeline:
    """An ETL pipeline: connections and steps, run in DAG order in one DuckDB session.

    ``base_dir`` anchors relative folders and holds the ``.env`` file read for
    ``${VAR}`` references (default: the current folder). ``store`` is a
    ``RunStore`` or its URL (default ``ETL_NB_STORE_URL``, else the SQLite file of
    ``base_dir``'s project folder: see ``etl_nb.project``); ``database``,
    ``memory_limit`` and ``temp_directory`` set up the DuckDB session
    (``memory_limit="2GB"`` spills to ``temp_directory``).
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
        parameters = _mapping(parameters, "Pipeline(parameters=...)")
        try:
            self.spec = PipelineSpec(name=name, parameters=parameters)
        except Exception:
            raise SpecError(
                f"{name!r} is not a valid pipeline name: use letters, digits and underscores."
            ) from None
        self.base_dir = _folder(base_dir, "base_dir")
        self._store = _kind(store, (RunStore, str), "Pipeline(store=...)", "a RunStore or a store URL")
        self.retry = _kind(retry, (RetryPolicy,), "Pipeline(retry=...)", "a RetryPolicy") or RetryPolicy()
        _check_session_options(database, memory_limit, temp_directory)
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
            raise SpecError(f"Connection {name!r} needs a URL or a folder.", step=_text_or_none(name))
        if not isinstance(url, str):
            raise SpecError(
                f"Connection {name!r}: the URL or folder must be text, not {_type_name(url)}.",
                step=_text_or_none(name),
            )
        _kind(type, (str,), f"connect({name!r}, type=...)", "a connector kind such as 'postgres'")
        return self.add(
            validated(
                ConnectionSpec, name=name, type=type or infer_connection_type(url), url=url, options=options
            )
        )

    def extract(  # noqa: PLR0913 - keywords mirror the grammar's extract options and body keys
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
        on_drift: DriftPolicy = "warn",
        cache_ttl: str | None = None,
    ) -> Pipeline:
        """Declare an extract from connection ``source`` into table ``name``."""
        options = _mapping(options, f"extract({name!r}, options=...)")
        params = _mapping(params, f"extract({name!r}, params=...)")
        paginate = _mapping(paginate, f"extract({name!r}, paginate=...)") or None
        return self.add(
            validated(
                ExtractStep,
                name=name,
                source=source,
                query=query,
                path=path,
                format=format,
                options=options,
                params=params,
                records=records,
                paginate=paginate,
                incremental=incremental,
                on_drift=on_drift,
                cache_ttl=cache_ttl,
            )
        )

    def transform(
        self, name: str, sql: str | None = None, *, python: str | Callable[..., Any] | None = None
    ) -> Pipeline:
        """Declare a transform: DuckDB ``sql``, or ``python`` code (or a function taking step names)."""
        if callable(python) and not isinstance(python, str):
            return self.add(validated(TransformStep, name=name, function=python))
        return self.add(validated(TransformStep, name=name, sql=sql, python=python))

    def check(self, step: str, rules: list[Any], *, warn: bool = False) -> Pipeline:
        """Declare data checks on ``step`` (the grammar's YAML list, as Python objects)."""
        _kind(warn, (bool,), f"check({step!r}, warn=...)", "True or False")
        return self.add(
            validated(CheckStep, step=step, rules=check_rules(rules, _text_or_none(step)), warn=warn)
        )

    def load(
        self,
        step: str,
        to: str,
        *,
        table: str | None = None,
        path: str | None = None,
        mode: LoadMode = DEFAULT_LOAD_MODE,
        key: str | Iterable[str] | None = None,
        dry_run: bool = False,
    ) -> Pipeline:
        """Declare a load of ``step`` into connection ``to`` (``table=`` or ``path=``).

        ``mode`` is ``replace`` unless told (``append``, ``merge`` with ``key``), so
        running a pipeline twice leaves its targets as one run left them.
        ``dry_run=True`` makes it say what it would write (merge: rows inserted,
        updated, unchanged) and write nothing.
        """
        keys = _names(key, f"load({step!r}, key=...)", "a column name or a list of them")
        _kind(dry_run, (bool,), f"load({step!r}, dry_run=...)", "True or False")
        return self.add(
            validated(
                LoadStep, step=step, to=to, table=table, path=path, mode=mode, key=keys, dry_run=dry_run
            )
        )

    def add(self, statement: ConnectionSpec | Step) -> Pipeline:
        """Add a parsed statement (from ``parse_cell``), replacing one with the same identity."""
        self.spec.add(statement)
        return self

    # --- running --------------------------------------------------------------------------

    @property
    def session(self) -> Session:
        """The DuckDB session that holds this pipeline's tables (created on first use)."""
        if self._session is None:
            try:
                self._session = Session(
                    self._session_options["database"],
                    memory_limit=self._session_options["memory_limit"],
                    temp_directory=self._session_options["temp_directory"],
                )
            except duckdb.Error as exc:
                raise PipelineError(
                    f"Cannot open the DuckDB session of pipeline '{self.name}': "
                    f"{' '.join(str(exc).split())}. Check Pipeline(database=..., memory_limit=..., "
                    "temp_directory=...)."
                ) from None
        return self._session

    @property
    def store(self) -> RunStore:
        """The run store runs are recorded in."""
        if not isinstance(self._store, RunStore):
            # The project of the pipeline's folder, wherever the process was started from.
            self._store = RunStore(self._store or default_store_url(self.base_dir))
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
        dry_run: bool = False,
        cache: bool = False,
        resume: str | None = None,
    ) -> RunResult:
        """Run the pipeline (or part of it) and record the run in the store.

        ``params`` fill ``{{ name }}`` (over the pipeline's parameter defaults).
        ``only`` runs the named steps with their checks and loads; ``from_step``
        runs a step and everything after it; ``steps`` runs exactly these step
        ids (as ``RunResult.steps`` names them). A failed run returns
        ``status="failed"`` and changes no target; ``raise_for_status()`` raises.
        ``dry_run=True`` makes every load say what it would do and write nothing.
        ``cache=True`` reuses the output of every step whose fingerprint is
        unchanged; ``resume=RUN_ID`` takes the steps that succeeded in that failed
        run from the outputs it kept (``docs/cache.md``); each step's
        ``detail`` then says what was decided and why.
        """
        params, only, steps = _check_run_arguments(
            params, only, from_step, steps, materialize, listener, notebook, trigger, run_id
        )
        _kind(dry_run, (bool,), "run(dry_run=...)", "True or False")
        dry_run = dry_run or dry_run_everywhere()
        values = {**self.spec.parameters, **params}
        store = self.store
        if resume is not None:  # a bad id is refused before anything is recorded
            resume = check_resumable(store, self.name, resume)
        # Inside `etl-nb run`, steps are recorded into the notebook's run.
        recorder = RunRecorder.start(
            store, self.name, values, run_id=run_id, notebook=notebook, trigger=trigger
        )
        # None unless OpenLineage is configured; a dry-run writes nothing, so it has no lineage.
        lineage = None if dry_run else RunLineage.start(self.spec, recorder.run_id, self.base_dir)
        started = dt.datetime.now(dt.UTC)
        steps_done: list[StepResult] = []
        error: BaseException | None = None
        try:
            dag = self.dag()
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
                dry_run=dry_run,
                cache=step_cache,
            )
            outcome = runner.run(
                nodes, values, materialize=materialize, watermarks=watermarks, schemas=self._schemas(store)
            )
            steps_done, error = outcome.steps, outcome.error
            step_cache.finish(steps_done, failed=error is not None)
            if error is None:
                # A mark moves only when every step downstream of its extract ran too:
                # rows an unrun (or dry-run) load never wrote would otherwise be skipped for good.
                ran = {s.step for s in steps_done if not (s.detail or {}).get("dry_run")} & set(nodes)
                marks = {n: m for n, m in outcome.watermarks.items() if dag.descendants([n]) <= ran}
                store.set_watermarks(self.name, recorder.run_id, marks)
        except EtlError as exc:
            error = scrub_chain(exc)
        except BaseException as exc:
            recorder.finish(steps_done, error=f"internal error: {exc!r}")
            if lineage is not None:
                lineage.finish(steps_done, error=f"internal error: {exc!r}")
            raise
        status = recorder.finish(steps_done, error=str(error) if error else None)
        if lineage is not None:
            lineage.finish(steps_done, error=str(error) if error else None, columns=self._columns(steps_done))
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
        _kind(node, (str,), "run_step(node)", "a step id")
        params = _mapping(params, "run_step(params=...)")
        dag = self.dag()
        if node not in dag.nodes:
            raise PipelineError(f"There is no step '{node}'.{did_you_mean(node, dag.nodes)}", step=node)
        for upstream in dag.upstream(node):
            step = dag.nodes[upstream]
            if isinstance(step, ExtractStep | TransformStep) and not self.session.has(upstream):
                raise PipelineError(
                    f"Step '{node}' reads '{upstream}', which has not run in this session yet. "
                    f"Run its cell first, or run everything with %etl run.",
                    step=node,
                )
        values = {**self.spec.parameters, **params}
        runner = Runner(
            self.spec,
            dag,
            self.session,
            self._context(),
            retry=self.retry,
            run_id=new_run_id(),
            dry_run=dry_run_everywhere(),
        )
        # Drift is checked against the store once this session has opened it (a run was
        # recorded): a cell on its own does not create a run store.
        schemas = self._schemas(self._store, [node]) if isinstance(self._store, RunStore) else {}
        outcome = runner.run([node], values, materialize="all", schemas=schemas)
        outer = RunRecorder.outer(lambda: self.store)
        if outer is not None:
            outer.record(outcome.steps)
        if outcome.error is not None:
            raise outcome.error
        return outcome.steps[0]

    def table(self, name: str) -> pl.DataFrame:
        """The full output of step ``name`` as a Polars DataFrame."""
        _kind(name, (str,), "table(name)", "a step name")
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

    def _columns(self, steps: Iterable[StepResult]) -> dict[str, list[str]]:
        """The columns of the table steps that ran (for lineage: a Python step's are known only so)."""
        tables = self.spec.tables()
        found = {}
        for step in steps:
            if step.step in tables and step.ran and self.session.has(step.step):
                try:
                    found[step.step] = list(self.session.relation(step.step).columns)
                except Exception:  # a stream already read, say: its lineage comes from the SQL
                    continue
        return found

    def _schemas(
        self, store: RunStore, names: Iterable[str] | None = None
    ) -> dict[str, tuple[str, dict[str, str]]]:
        """Each extract's columns in its last good run (schema drift compares with them)."""
        wanted = None if names is None else set(names)
        found = {}
        for step in self.spec.steps:
            if isinstance(step, ExtractStep) and (wanted is None or step.name in wanted):
                last = store.last_columns(self.name, step.name)
                if last is not None:
                    found[step.name] = last
        return found

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


# --- argument checks: a bad value from Python code gets one line, never a traceback --------

RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
# What DuckDB takes as a memory limit: a number with a unit, or a share of the machine's memory.
_MEMORY = re.compile(r"\s*\d+(\.\d+)?\s*(%|[KMGT]i?B|[KMGT]|B|bytes?)\s*", re.IGNORECASE)


def _type_name(value: object) -> str:
    return "None" if value is None else f"{type(value).__name__} {cut(repr(value), 60)}"


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _check_run_arguments(
    params: object,
    only: object,
    from_step: object,
    steps: object,
    materialize: object,
    listener: object,
    notebook: object,
    trigger: object,
    run_id: object,
) -> tuple[dict[str, Any], list[str] | None, list[str] | None]:
    """``Pipeline.run``'s arguments checked: a bad one is a one-line ``SpecError``."""
    params = _mapping(params, "run(params=...)")
    only = _names(only, "run(only=...)", "step names") if only is not None else None
    steps = _names(steps, "run(steps=...)", "step ids") if steps is not None else None
    _kind(from_step, (str,), "run(from_step=...)", "a step name")
    if materialize not in get_args(Materialize):
        raise SpecError(
            f"run(materialize={materialize!r}): use one of "
            f"{', '.join(repr(m) for m in get_args(Materialize))}."
        )
    if listener is not None and not all(
        callable(getattr(listener, m, None)) for m in ("step_started", "step_finished")
    ):
        raise SpecError("run(listener=...): give an object with step_started and step_finished methods.")
    _kind(notebook, (str,), "run(notebook=...)", "a notebook path")
    if not isinstance(trigger, str) or not trigger:
        raise SpecError(f"run(trigger={trigger!r}): expected text such as 'manual' or 'schedule'.")
    if run_id is not None and not (isinstance(run_id, str) and RUN_ID.fullmatch(run_id)):
        raise SpecError(
            f"run(run_id={run_id!r}): a run id is 1 to 32 letters, digits, '-' or '_'. "
            "Leave it out to get a new one."
        )
    return params, only, steps


def _kind(value: _T, types: tuple[type, ...], what: str, expected: str) -> _T:
    """``value`` if it is None or one of ``types``; else a ``SpecError`` naming ``what`` to give."""
    if value is None or isinstance(value, types):
        return value
    raise SpecError(f"{what}: expected {expected}, got {_type_name(value)}.")


def _mapping(value: object, what: str) -> dict[str, Any]:
    """``value`` (None, or a mapping with text keys) as a dict."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise SpecError(f"{what}: expected a mapping of names to values, got {_type_name(value)}.")
    return dict(value)


def _names(value: object, what: str, expected: str) -> list[str]:
    """``"a,b"``, ``["a", "b"]`` or None as a list of names."""
    if value is None:
        return []
    if isinstance(value, str):
        return [name.strip() for name in value.split(",") if name.strip()]
    if isinstance(value, Iterable) and not isinstance(value, bytes | Mapping):
        names = list(value)
        if all(isinstance(n, str) for n in names):
            return names
    raise SpecError(f"{what}: expected {expected} (text, or a list of text), got {_type_name(value)}.")


def _folder(value: object, what: str) -> Path:
    """``Pipeline(base_dir=...)`` as an absolute folder (default: the current folder)."""
    _kind(value, (str, Path), f"Pipeline({what}=...)", "a folder path")
    text = str(value or Path.cwd())
    if "\x00" in text:
        raise SpecError(f"Pipeline({what}=...): the path contains a NUL byte (\\x00). Remove it.")
    return Path(text).resolve()


def _check_session_options(database: object, memory_limit: object, temp_directory: object) -> None:
    """Refuse DuckDB settings that cannot work before the first run trips over them."""
    _kind(database, (str, Path), "Pipeline(database=...)", "':memory:' or a DuckDB file path")
    _kind(memory_limit, (str,), "Pipeline(memory_limit=...)", "a size such as '2GB'")
    _kind(temp_directory, (str, Path), "Pipeline(temp_directory=...)", "a folder path")
    for name, value in (("database", database), ("temp_directory", temp_directory)):
        if value is not None and "\x00" in str(value):
            raise SpecError(f"Pipeline({name}=...): the path contains a NUL byte (\\x00). Remove it.")
    if database is not None and str(database) != ":memory:" and not Path(database).parent.is_dir():  # type: ignore[arg-type]
        raise SpecError(
            f"Pipeline(database={str(database)!r}): the folder {str(Path(database).parent)!r} does not "  # type: ignore[arg-type]
            "exist. Create it, or use ':memory:'."
        )
    if memory_limit is not None and not _MEMORY.fullmatch(str(memory_limit)):
        raise SpecError(
            f"Pipeline(memory_limit={memory_limit!r}): give a size with a unit, such as '2GB', '512MB' "
            "or '80%'."
        )
