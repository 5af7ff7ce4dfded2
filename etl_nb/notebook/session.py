"""The notebook's session: what ``%etl`` lines and ``%%etl`` cells do, as a thin skin over ``Pipeline``.

``etl_nb.notebook.magics`` registers the magics and hands every line and
cell here; this module (and with it the engine: DuckDB, Polars, the run
store) is imported when the first one runs, so ``%load_ext etl_nb`` stays
light. The grammar is DESIGN.md section 2.

A notebook has one pipeline (``etl_nb.current()``). Each ``%%etl`` cell goes
through the shared parser (``etl_nb.spec.parse_cell``), is added to that
pipeline, and runs at once against the outputs of earlier cells:

- ``connect`` declares, ``extract``/``transform`` materialise and preview,
  ``check`` runs its rules, ``load`` writes;
- ``run``, ``dag``, ``runs``, ``show``, ``reset``, ``params`` act on the whole pipeline.

``{{ name }}`` parameters take their values from the notebook's namespace
(where papermill injects them) and are bound, never spliced. A user mistake
(an ``EtlError``) is shown as one message without a traceback
(``EtlUsageError``); the cell still fails, so papermill fails the run. Any
other exception is a bug in etl_nb and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import functools
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl
from duckdb.sqltypes import DuckDBPyType
from IPython.core.error import UsageError
from IPython.display import display as _ipython_display

from etl_nb._masking import redact
from etl_nb.engine.sqltext import error_position
from etl_nb.errors import EtlError, MissingParameter, PipelineError, SpecError, did_you_mean
from etl_nb.notebook.cellref import at_cell
from etl_nb.notebook.forms import connect_form_name, show_connect_form, show_params_form
from etl_nb.notebook.preview import DagView, Message, RunsTable, StepPreview, rows_text, run_bundle
from etl_nb.notebook.reader import read_notebook
from etl_nb.project import papermill_notebook, pipeline_name
from etl_nb.results import load_summary
from etl_nb.spec import (
    IDENTIFIER,
    CheckStep,
    Command,
    ConnectionSpec,
    ExtractStep,
    LoadStep,
    Statement,
    Step,
    TransformStep,
    parse_cell,
    step_id,
)
from etl_nb.store import outer_run_id

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from etl_nb.engine.dag import Dag
    from etl_nb.pipeline import Pipeline

__all__ = ["EtlUsageError", "NotebookSession", "finish_recorded_run"]

# IPython's display is untyped; one typed alias keeps mypy strict everywhere else.
display: Callable[..., Any] = _ipython_display

DEFAULT_PREVIEW_ROWS = 10
DEFAULT_RUNS = 10
# Values a Python transform may receive from the notebook namespace: data, not modules or objects.
_PLAIN = (str, int, float, bool, type(None), dt.date, dt.datetime, dt.time, dt.timedelta, decimal.Decimal)


class EtlUsageError(UsageError):
    """A user mistake in a ``%etl`` cell: shown as one message, never as a traceback.

    It subclasses ``UsageError`` and renders its own one-line traceback, so the
    cell fails (papermill stops the run and records the error) while the user
    sees only the sentence that names the step and the fix. ``error`` is the
    ``EtlError`` behind it.
    """

    def __init__(self, message: str, error: EtlError | None = None) -> None:
        super().__init__(message)
        self.error = error
        self.kind = type(error).__name__ if error is not None else "EtlError"

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[0;31m{self.kind}\x1b[0m: {self}"]


def _notebook_path(shell: InteractiveShell) -> str | None:
    """The running notebook's path when the frontend or the runner tells it."""
    for value in (
        os.environ.get("ETL_NB_NOTEBOOK"),
        shell.user_ns.get("__vsc_ipynb_file__"),
        os.environ.get("JPY_SESSION_NAME"),
    ):
        if isinstance(value, str) and value.endswith(".ipynb"):
            return value
    under_papermill = papermill_notebook()  # plain `papermill IN OUT` tells its kernel nothing
    return str(under_papermill) if under_papermill else None


def _saved_notebook(shell: InteractiveShell) -> Path | None:
    """The notebook file on disk, if the frontend told its path (it may be relative to the kernel)."""
    path = _notebook_path(shell)
    if path is None:
        return None
    for candidate in (Path(path), Path.cwd() / Path(path).name):
        if candidate.is_file():
            return candidate.resolve()
    return None


@functools.lru_cache(maxsize=512)
def _parse(line: str, body: str | None) -> Statement:
    # Statements are frozen, so a re-run of an unchanged cell reuses its parse.
    return parse_cell(line, body)


def _plain(value: Any) -> bool:
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _bindable(value: Any, name: str, step: str) -> Any:
    """A notebook value for ``{{ name }}``; a module or function (``{{ os }}``) is a mistake."""
    if isinstance(value, ModuleType) or (callable(value) and not _plain(value)):
        kind = "module" if isinstance(value, ModuleType) else type(value).__name__
        raise PipelineError(
            f"Step '{step}' uses the parameter {{{{ {name} }}}} but '{name}' is a {kind} in the notebook, "
            "not a value. Give it a string, number or date, or rename the parameter.",
            step=step,
        )
    return value


def _short_sql_error(message: str, step: Step | None) -> str:
    """DuckDB's multi-line error as one line, with the position in the cell's own SQL."""
    position = error_position(message)
    if position is None or not isinstance(step, TransformStep) or step.sql is None:
        return " ".join(line.strip() for line in message.splitlines() if line.strip())
    from etl_nb.engine.dag import bindable_sql

    head = position.head
    line_no = position.line
    context = position.excerpt
    caret = position.caret
    lines = bindable_sql(step.sql).split("\n")
    where = ""
    if 0 < line_no <= len(lines):
        core = context[3:] if context.startswith("...") else context
        caret -= len(context) - len(core)
        core = core.removesuffix("...")
        quoted = '"' + step.name.replace('"', '""') + '"'
        for prefix in (f"CREATE TABLE {quoted} AS ", f"CREATE VIEW {quoted} AS ", ""):
            full = (prefix if line_no == 1 else "") + lines[line_no - 1]
            at = full.find(core)
            if at >= 0 and core:
                column = at + caret - (len(prefix) if line_no == 1 else 0) + 1
                if column >= 1:
                    where = f" at line {line_no}, column {column}"
                break
    head = " ".join(line.strip() for line in head.splitlines() if line.strip())
    prefix = f"SQL error in transform '{step.name}'"
    if where and head.startswith(prefix + ":"):
        head = prefix + where + head[len(prefix) :]
    return head


# DuckDB types whose Python values become exactly the Polars column DuckDB's Arrow export gives.
_POLARS_TYPES: dict[str, type[pl.DataType]] = {
    "boolean": pl.Boolean,
    "tinyint": pl.Int8,
    "smallint": pl.Int16,
    "integer": pl.Int32,
    "bigint": pl.Int64,
    "utinyint": pl.UInt8,
    "usmallint": pl.UInt16,
    "uinteger": pl.UInt32,
    "ubigint": pl.UInt64,
    "float": pl.Float32,
    "double": pl.Float64,
    "varchar": pl.String,
}  # not dates and times: Python's range is narrower than DuckDB's ('infinity' becomes 9999-12-31)


def _polars_type(kind: DuckDBPyType) -> pl.DataType | None:
    if kind.id == "decimal":
        fields: dict[str, Any] = dict(kind.children)
        return pl.Decimal(int(fields["precision"]), int(fields["scale"]))
    plain = _POLARS_TYPES.get(kind.id)
    return plain() if plain is not None else None


def _first_rows(con: duckdb.DuckDBPyConnection, select: str) -> tuple[pl.DataFrame, list[str]]:
    """The (few) rows of ``select`` as a Polars frame, and each column's DuckDB type name.

    One statement on the connection, fetched in full (an unfinished result
    would block it). Rows of plain types (numbers, decimals, text, booleans)
    come as Python values into a frame typed as DuckDB's Arrow export types
    it: for a preview's few rows that skips the Arrow export, which costs more
    than the query. Other types come through Arrow. Repeated column names
    (which the relation renames) or an error take the relation's own
    ``.pl()``, so the frame, and any error, read as they always did.
    """
    try:
        con.execute(select)
        described = con.description or []
        types = [str(column[1]) for column in described]  # DuckDB's names (BIGINT, VARCHAR)
        names = [column[0] for column in described]
        schema = [_polars_type(column[1]) for column in described]
        if None not in schema:
            rows = con.fetchall()
            if len(set(names)) == len(names):
                return pl.DataFrame(rows, schema=list(zip(names, schema, strict=True)), orient="row"), types
        else:
            with warnings.catch_warnings():  # "an extra copy of the rows": a few rows here
                warnings.simplefilter("ignore", UserWarning)
                table = con.to_arrow_table()
            frame = pl.from_arrow(table, rechunk=False)
            assert isinstance(frame, pl.DataFrame)  # a table gives a frame
            return frame, types
    except (duckdb.Error, pl.exceptions.DuplicateError):
        pass
    first = con.sql(select)
    return first.pl(), [str(kind) for kind in first.types]


@dataclass
class NotebookSession:
    """The notebook's pipeline and what its cells did: which steps ran, failed or went stale."""

    shell: InteractiveShell
    pipeline: Pipeline
    tick: int = 0
    done: dict[str, int] = field(default_factory=dict)  # node -> tick of its last success
    declared: dict[str, int] = field(default_factory=dict)  # node -> tick of its last declaration
    failed: set[str] = field(default_factory=set)
    seconds: dict[str, float] = field(default_factory=dict)
    recorded: set[str] = field(default_factory=set)  # in a recorded run: the steps that ran
    failed_step: str | None = None  # the node whose failure failed the last %etl run

    @classmethod
    def create(cls, shell: InteractiveShell, base_dir: Path | None = None) -> NotebookSession:
        """A fresh pipeline named after the notebook, with paths relative to ``base_dir``.

        ``base_dir`` is the kernel's folder when ``%load_ext etl_nb`` ran (default: now).
        """
        from etl_nb.pipeline import Pipeline

        name = pipeline_name(_notebook_path(shell))
        return cls(shell=shell, pipeline=Pipeline(name, base_dir=base_dir or Path.cwd()))

    # --- cells ----------------------------------------------------------------------------

    def execute(self, line: str, body: str | None) -> None:
        """Run one ``%etl`` line or ``%%etl`` cell; raise ``EtlUsageError`` for a user mistake."""
        statement: Statement | None = None
        form_for = connect_form_name(line, body)
        if form_for is not None and hasattr(self.shell, "kernel") and _recorded_run() is None:
            # A bare `%etl connect NAME` in a lab: the form writes the full cell below.
            show_connect_form(form_for, base_dir=Path.cwd(), set_next_input=self.shell.set_next_input)
            return
        try:
            statement = _parse(line, body)
            if isinstance(statement, Command):
                self.command(statement)
            else:
                self.declare(statement)
                if isinstance(statement, ConnectionSpec):
                    url = redact(statement.url)
                    display(Message(f"connection {statement.name} ({statement.type}): {url}"))
                elif _recorded_run() is not None:
                    display(Message(f"{_label(statement)}: {_DEFERRED}"))
                else:
                    self.run_cell_step(statement)
        except EtlError as exc:
            raise EtlUsageError(self._message(exc, line, statement), exc) from None

    def _message(self, exc: EtlError, line: str, statement: Statement | None) -> str:
        """The one line for ``exc``: the step as the user named it, the cell that declared it in a run."""
        verb = line.split(maxsplit=1)[0] if line.split() else ""
        ran = verb in ("run", "show")  # the commands that run the pipeline
        node = (self.failed_step or exc.step) if ran else exc.step
        step = statement if isinstance(statement, Step) else self._declared_step(node)
        message = _short_sql_error(exc.message, step) if "SQL error" in exc.message else exc.message
        name = _line_name(line) or exc.step  # `check orders`, not its node id `check:orders`
        if (
            name
            and f"'{name}'" not in message
            and verb in ("connect", "extract", "transform", "check", "load")
        ):
            message = f"{verb} '{name}': {message}"
        if ran and _recorded_run() is not None:
            # The run happens here, but the mistake is in the cell that declared the failing step.
            message = at_cell(self.declared_cell(node), message)
        return message

    def _declared_step(self, node: str | None) -> Step | None:
        return next((s for s in self.pipeline.spec.steps if step_id(s) == node), None)

    def declared_cell(self, node: str | None) -> int | None:
        """The index of the cell in the saved notebook that declares step (or connection) ``node``."""
        saved = _saved_notebook(self.shell)
        if node is None or saved is None:
            return None
        try:
            cells = read_notebook(saved).cells
        except EtlError:
            return None
        found: int | None = None
        for cell in cells:  # the last declaration wins, as in the kernel
            statement = cell.statement
            if isinstance(statement, ConnectionSpec):
                found = cell.index if statement.name == node else found
            elif isinstance(statement, Step) and step_id(statement) == node:
                found = cell.index
        return found

    def declare(self, statement: ConnectionSpec | Step) -> None:
        """Add a statement; if it leaves the graph invalid, take it back and raise."""
        spec = self.pipeline.spec
        steps, connections = list(spec.steps), dict(spec.connections)
        self.pipeline.add(statement)
        try:
            dag = self.pipeline.dag()
            dag.order()
        except EtlError:
            spec.steps[:] = steps
            spec.connections.clear()
            spec.connections.update(connections)
            raise
        self.tick += 1
        node = statement.name if isinstance(statement, ConnectionSpec) else step_id(statement)
        self.declared[node] = self.tick
        if node in dag.nodes:  # declared again: it and what reads it run again
            self.recorded -= dag.descendants([node])

    def run_cell_step(self, step: Step) -> None:
        """Run one step against earlier cells' outputs and display what it did."""
        node = step_id(step)
        params = self.params_for([step])
        try:
            outcome = self.pipeline.run_step(node, params)
        except EtlError:
            self.failed.add(node)
            raise
        self.tick += 1
        self.done[node] = self.tick
        self.failed.discard(node)
        self.seconds[node] = outcome.seconds
        if isinstance(step, ExtractStep | TransformStep):
            display(self.preview(step.name, DEFAULT_PREVIEW_ROWS, rows=outcome.rows, took=outcome.seconds))
            warnings = (outcome.detail or {}).get("warnings", [])
            if warnings:
                display(Message(f"{step.verb} {step.name}: {len(warnings)} warning(s)", warnings, "warned"))
        elif isinstance(step, CheckStep):
            rules = len(step.rules)
            if outcome.status == "warned":
                failures = (outcome.detail or {}).get("failures", [])
                detail = [f"{f['rule']}: {f['count']:,} of {f['total']:,} rows break it" for f in failures]
                display(
                    Message(f"check {step.step}: {len(failures)} of {rules} rules warn", detail, "warned")
                )
            else:
                display(Message(f"check {step.step}: {rules} rule{'s' if rules != 1 else ''} passed"))
        else:
            assert isinstance(step, LoadStep)
            summary = load_summary(outcome.detail)
            if (outcome.detail or {}).get("dry_run"):
                target = f"{step.to}:{step.target}"
                display(Message(f"load {step.step} to {target}, dry-run (nothing written): {summary}"))
                return
            display(
                Message(
                    f"load {step.step}: wrote {rows_text(outcome.rows or 0)} to "
                    f"{step.to}:{step.target} ({step.mode})",
                    [summary] if summary else [],
                )
            )

    def preview(
        self, name: str, limit: int, *, rows: int | None = None, took: float | None = None
    ) -> StepPreview:
        """The first ``limit`` rows of step ``name``, its row count, schema and time."""
        session = self.pipeline.session
        # A LIMIT in the SQL is several times cheaper than DuckDB's relation.limit() per cell.
        frame, types = _first_rows(session.con, f"SELECT * FROM {session.source(name)} LIMIT {int(limit)}")
        if rows is None:
            rows = session.count(name)
        kind = self.pipeline.spec.tables()[name].verb
        return StepPreview(name=name, frame=frame, rows=rows, seconds=took, kind=kind, types=types)

    # --- parameters -----------------------------------------------------------------------

    def params_for(self, steps: list[Step], *, strict: bool = True) -> dict[str, Any]:
        """Values from the notebook namespace for the parameters ``steps`` use.

        ``{{ name }}`` in SQL must be defined (``strict=False`` leaves a missing
        one to the run, for steps a partial run may skip); a Python transform
        also gets the plain values (strings, numbers, dates, lists of them) it names.
        """
        namespace = self.shell.user_ns
        tables = self.pipeline.spec.tables()
        params: dict[str, Any] = {}
        for step in steps:
            if not isinstance(step, ExtractStep | TransformStep | CheckStep):
                continue
            for name in step.parameters:
                if name not in namespace and not strict:
                    continue
                if name not in namespace:
                    raise MissingParameter(
                        name,
                        step=step_id(step),
                        known=self.parameter_candidates(),
                        fix=f"Define it in the parameters cell ({name} = ...) and run that cell first.",
                    )
                params[name] = _bindable(namespace[name], name, step_id(step))
            if isinstance(step, TransformStep) and step.python is not None:
                from etl_nb.engine.dag import python_free_names

                for name in python_free_names(step.python, step.name):
                    if name not in tables and name != "pl" and name in namespace and _plain(namespace[name]):
                        params[name] = namespace[name]
        return params

    def parameter_candidates(self) -> list[str]:
        """Names an unknown ``{{ name }}`` may have meant: the parameters cell's and the user's own values.

        The saved notebook's parameters cell counts even when it has not run
        yet; of the namespace only the user's plain values count (not IPython's
        ``In``/``exit``, modules or functions), as only those can be parameters.
        """
        shell = self.shell
        names: list[str] = []
        saved = _saved_notebook(shell)
        if saved is not None:
            with contextlib.suppress(EtlError):  # an unreadable file only costs the hint
                names += read_notebook(saved).parameter_names
        hidden = shell.user_ns_hidden
        names += [
            k for k, v in shell.user_ns.items() if not k.startswith("_") and k not in hidden and _plain(v)
        ]
        return list(dict.fromkeys(names))

    # --- line commands --------------------------------------------------------------------

    def command(self, command: Command) -> None:
        """Run a line command: run, dag, runs, show, export, reset, params."""
        handler = getattr(self, f"cmd_{command.verb}")
        self.failed_step = None
        handler(command)

    def cmd_run(self, command: Command, *, last: bool = False) -> None:
        """``%etl run [--only A,B] [--from A]``: run the pipeline in DAG order and record it.

        In a recorded run each step runs once: a run takes only the steps that
        have not run yet (``--only``/``--from`` narrow that, with what they
        need). ``last`` is the run at the end of the notebook, which nothing
        reads after, so it may fuse and stream; the others keep every step's rows.
        """
        from etl_nb.engine.cache import notebook_run_options  # with the engine: loaded when first run
        from etl_nb.notebook.widgets import RunProgress

        only: list[str] | None = command.options.get("only")
        from_step: str | None = command.options.get("from")
        dag = self.pipeline.dag()
        steps: list[str] | None = None
        if _recorded_run() is not None:
            steps = self.unrun(dag, only, from_step)
            only = from_step = None
            if not steps:
                display(Message("Nothing to run: every declared step ran in this recorded run."))
                return
        self.failed_step = None
        chosen = [dag.nodes[n] for n in steps] if steps is not None else list(dag.nodes.values())
        params = self.params_for(chosen, strict=only is None and from_step is None)
        kernel = hasattr(self.shell, "kernel")
        progress = RunProgress(
            self.pipeline.name, len(chosen), widgets=kernel and self._shows_widgets(), terminal=not kernel
        )
        try:
            result = self.pipeline.run(
                params,
                only=only,
                from_step=from_step,
                steps=steps,
                listener=progress,
                notebook=_notebook_path(self.shell),
                materialize="auto" if last else "all",
                **notebook_run_options(recorded=_recorded_run() is not None),
            )
        except BaseException:
            progress.finish({"text/plain": progress.text()})
            raise
        progress.finish(run_bundle(result))
        if steps is not None:
            self.recorded |= {n for n, s in result.steps.items() if s.ran}
        self.tick += 1
        for node, step in result.steps.items():
            if step.ran:
                self.done[node] = self.tick
                self.failed.discard(node)
                self.seconds[node] = step.seconds
            elif step.status == "failed":
                self.failed.add(node)
                self.failed_step = self.failed_step or node
        result.raise_for_status()

    def _shows_widgets(self) -> bool:
        """Whether a notebook frontend renders this kernel's widgets (papermill and consoles do not).

        Jupyter Server names the notebook of the kernels it starts
        (``JPY_SESSION_NAME``), as VS Code does; papermill, a recorded run and
        ``jupyter console`` do not, and would keep a dead widget's state.
        """
        if _recorded_run() is not None:
            return False
        return bool(os.environ.get("JPY_SESSION_NAME")) or "__vsc_ipynb_file__" in self.shell.user_ns

    def unrun(self, dag: Dag, only: list[str] | None = None, from_step: str | None = None) -> list[str]:
        """In a recorded run: the steps still to run (of ``only``/``from_step`` and what they need)."""
        if only is None and from_step is None:
            wanted = set(dag.nodes)
        else:
            wanted = dag.select(only, from_step)
            wanted |= dag.ancestors(wanted)
        return [n for n in dag.order() if n in wanted and n not in self.recorded]

    def cmd_dag(self, command: Command) -> None:
        """``%etl dag``: the graph as Mermaid, with failed and stale steps marked."""
        dag = self.pipeline.dag()
        marks = self.marks(dag)
        labels = {node: _label(step) for node, step in dag.nodes.items()}
        lines = [
            (labels[node], [labels[u] for u in dict.fromkeys(dag.upstream(node))], marks.get(node, ""))
            for node in dag.order()
        ]
        display(DagView(dag.mermaid(marks), lines))

    def marks(self, dag: Dag) -> dict[str, str]:
        """``failed`` for steps whose last run failed; ``stale`` for steps whose output is missing or old."""
        marks: dict[str, str] = {}
        tables = self.pipeline.spec.tables()
        session = self.pipeline._session
        for node in dag.order():
            if node in self.failed:
                marks[node] = "failed"
                continue
            ran = self.done.get(node)
            missing = node in tables and (session is None or not session.has(node))
            upstream = dag.upstream(node)
            if (
                ran is None
                or missing
                or self.declared.get(node, 0) > ran
                or any(u in marks or self.done.get(u, 0) > ran for u in upstream)
            ):
                marks[node] = "stale"
        return marks

    def cmd_runs(self, command: Command) -> None:
        """``%etl runs [--limit N]``: this pipeline's recent runs from the run store."""
        limit = _limit(command, DEFAULT_RUNS)
        runs = self.pipeline.store.list_runs(self.pipeline.name, limit=limit)
        display(RunsTable(runs, self.pipeline.name))

    def cmd_show(self, command: Command) -> None:
        """``%etl show STEP [--limit N]``: a step's preview again."""
        name = command.target or ""
        tables = self.pipeline.spec.tables()
        if name not in tables:
            hint = did_you_mean(name, tables)
            known = ", ".join(tables) or "none yet"
            raise PipelineError(
                f"There is no step '{name}' that makes a table.{hint} Steps: {known}.",
                step=name,
            )
        if _recorded_run() is not None and self.unrun(self.pipeline.dag()):
            self.cmd_run(Command(verb="run"))
        session = self.pipeline._session
        if session is None or not session.has(name):
            raise PipelineError(
                f"Step '{name}' has no output yet: run its cell or %etl run first.", step=name
            )
        limit = _limit(command, DEFAULT_PREVIEW_ROWS)
        display(self.preview(name, limit, took=self.seconds.get(name)))

    def cmd_reset(self, command: Command) -> None:
        """``%etl reset``: drop every table of the session; declarations stay."""
        self.pipeline.reset()
        self.done.clear()
        self.failed.clear()
        spec = self.pipeline.spec
        display(
            Message(
                f"reset '{self.pipeline.name}': tables dropped; {len(spec.connections)} connections and "
                f"{len(spec.steps)} steps still declared (run them again with %etl run)."
            )
        )

    def cmd_params(self, command: Command) -> None:
        """``%etl params``: the parameters the steps use and their values; in a lab, a form to run with."""
        if hasattr(self.shell, "kernel") and _recorded_run() is None:
            show_params_form(_saved_notebook(self.shell), self.shell.user_ns)
        names: dict[str, list[str]] = {}
        for step in self.pipeline.spec.steps:
            if isinstance(step, ExtractStep | TransformStep | CheckStep):
                for name in step.parameters:
                    names.setdefault(name, []).append(step_id(step))
        if not names:
            display(Message("No step uses a {{ parameter }}."))
            return
        namespace = self.shell.user_ns
        detail = [
            f"{name} = {namespace[name]!r} (used by {', '.join(steps)})"
            if name in namespace
            else f"{name}: not defined (used by {', '.join(steps)})"
            for name, steps in names.items()
        ]
        display(Message(f"{len(names)} parameter{'s' if len(names) != 1 else ''}:", detail))

    def cmd_export(self, command: Command) -> None:
        """``%etl export [PATH] [--to py|ipynb]``: the saved notebook as plain code (``etl-nb export``)."""
        from etl_nb.notebook.export import export_notebook

        source = _saved_notebook(self.shell)
        if source is None:
            raise SpecError(
                "%etl export cannot tell which notebook this is. Save it, then run in a terminal: "
                "etl-nb export NOTEBOOK.ipynb --to py"
            )
        target = command.target
        to = command.options.get("to") or ("py" if target and target.endswith(".py") else "ipynb")
        written = export_notebook(source, to="py" if to == "py" else "ipynb", output=target)
        print(f"exported the saved {source.name} to {written}")


def _limit(command: Command, default: int) -> int:
    return int(command.options.get("limit", default))  # checked by the grammar (spec._positive_int)


def _label(step: Step) -> str:
    if isinstance(step, CheckStep):
        return f"check {step.step}"
    if isinstance(step, LoadStep):
        return f"load {step.step} -> {step.to}:{step.target}"
    return step.name


def _line_name(line: str) -> str | None:
    words = line.split()
    if len(words) >= 2 and IDENTIFIER.match(words[1]):
        return words[1]
    return None


_DEFERRED = "declared; this recorded run runs the pipeline at %etl run or at the end of the notebook"


def _recorded_run() -> str | None:
    """The run id when ``etl-nb run`` executes this notebook, else None (interactive)."""
    return outer_run_id()


def finish_recorded_run(session: NotebookSession) -> None:
    """End of a recorded run: run the pipeline once if cells declared steps since it last ran.

    ``etl-nb run`` appends a cell calling ``magics.finish_recorded_run``. In a
    recorded run, step cells only declare their steps, so the whole pipeline
    runs as one atomic, incremental ``Pipeline.run`` -- the same run the
    exported script makes.
    """
    if _recorded_run() is not None and session.unrun(session.pipeline.dag()):
        try:
            session.cmd_run(Command(verb="run"), last=True)
        except EtlError as exc:
            raise EtlUsageError(session._message(exc, "run", None), exc) from None
