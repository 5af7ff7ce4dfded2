"""``etl-nb``: run notebooks as recorded pipelines, and read the run history.

Every user mistake ends with one line on stderr saying what to fix and exit
code 2; a failed run exits 1; a bug in etl_nb still shows its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from etl_nb.durations import count_problem
from etl_nb.errors import EtlError
from etl_nb.project import HOME_ENV, pipeline_name, project_home
from etl_nb.results import load_summary

if TYPE_CHECKING:
    from etl_nb.runs.kernel import EarlyKernel

EXIT_OK, EXIT_FAILED_RUN, EXIT_USAGE = 0, 1, 2
EXIT_BROKEN_PIPE = 141  # what a shell reports for a program ended by SIGPIPE


class _Parser(argparse.ArgumentParser):
    """argparse that reports mistakes in one line with the fix, exit code 2."""

    def error(self, message: str) -> Any:
        extra = message.removeprefix("unrecognized arguments: ").split()
        if message.startswith("unrecognized arguments: ") and extra:
            kind = "unknown option" if extra[0].startswith("-") else "unexpected argument"
            message = f"{kind} '{extra[0]}'"
        self.exit(EXIT_USAGE, f"etl-nb: error: {message}. See '{self.prog} --help'.\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``etl-nb`` command line."""
    parser = _Parser(prog="etl-nb", description="Notebook-native ETL: run, inspect and export pipelines.")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    run = commands.add_parser("run", help="run a notebook as one recorded pipeline run (papermill)")
    run.add_argument("notebook", metavar="NB")
    _add_params(run)
    run.add_argument("--backend", choices=["local", "celery"], default="local", help="where the run executes")
    run.add_argument(
        "--timeout", type=_duration, default=None, help="how long the run may take: 90s, 30m, 2h"
    )
    run.add_argument(
        "--dry-run", action="store_true", help="every load says what it would write, and writes nothing"
    )
    run.add_argument("--cache", action="store_true", help="reuse the outputs of unchanged steps")
    run.add_argument("--resume", metavar="RUN_ID", help="run a failed run again from the step that failed")

    runs = commands.add_parser("runs", help="recent runs, newest first")
    runs.add_argument(
        "--pipeline", metavar="NB", help="only this notebook's (or pipeline's) runs, with trends"
    )
    runs.add_argument("--status", choices=["queued", "running", "success", "failed", "warned"])
    runs.add_argument("--limit", type=_positive_int, default=20)
    runs.add_argument("--json", action="store_true", help="print JSON (each run with its steps)")

    show = commands.add_parser("show", help="one run: steps, rows, times, error")
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument("--json", action="store_true", help="print JSON")

    _add_scheduling(commands)

    export = commands.add_parser("export", help="write a notebook as a plain script or notebook (no magics)")
    export.add_argument("notebook", metavar="NB")
    export.add_argument(
        "--to", choices=["py", "ipynb"], help="a script or a plain notebook (default ipynb; py for -o X.py)"
    )
    export.add_argument(
        "-o", "--output", metavar="PATH", help="file to write (default: NB.py or NB_plain.ipynb beside NB)"
    )
    _add_lineage(commands)
    return parser


def _add_scheduling(commands: Any) -> None:
    """``schedule``, ``scheduler``, ``worker`` and ``backfill`` (DESIGN.md section 5)."""
    schedule = commands.add_parser("schedule", help="add, list, pause, resume or remove schedules")
    actions = schedule.add_subparsers(dest="action", required=True, parser_class=_Parser, metavar="ACTION")
    add = actions.add_parser("add", help="run NB on a cron schedule")
    add.add_argument("notebook", metavar="NB")
    add.add_argument("--cron", required=True, metavar="EXPR", help="five fields, e.g. '0 6 * * *'")
    add.add_argument("--tz", default="UTC", metavar="ZONE", help="IANA time zone (default UTC)")
    _add_params(add)
    add.add_argument("--timeout", type=_duration, default=None, metavar="D", help="90s, 30m, 2h")
    add.add_argument("--retries", type=_count, default=0, metavar="N", help="attempts after a failure")
    add.add_argument("--alert", action="append", default=[], metavar="URL_OR_MAILTO", help="repeatable")
    add.add_argument("--alert-on", choices=["failure", "always"], default="failure")
    listing = actions.add_parser("list", help="schedules with their next slot and last run")
    listing.add_argument("--json", action="store_true", help="print JSON")
    for verb, text in (("pause", "stop starting runs"), ("resume", "start runs again"), ("remove", "delete")):
        actions.add_parser(verb, help=text).add_argument("schedule_id", metavar="ID")

    scheduler = commands.add_parser(
        "scheduler", help="run due schedules until stopped (SIGTERM: finish, exit)"
    )
    scheduler.add_argument("--backend", choices=["local", "celery"], default="local")
    scheduler.add_argument("--interval", type=_duration, default=30.0, help="longest wait between looks")
    _add_logging(scheduler)

    worker = commands.add_parser("worker", help="a Celery worker for runs queued with --backend celery")
    worker.add_argument("--concurrency", type=_positive_int, default=2, metavar="N")
    _add_logging(worker)

    backfill = commands.add_parser("backfill", help="one recorded run per value of a parameter (resumable)")
    backfill.add_argument("notebook", metavar="NB")
    backfill.add_argument("--param", required=True, metavar="NAME")
    backfill.add_argument("--from", dest="start", required=True, metavar="A")
    backfill.add_argument("--to", dest="end", required=True, metavar="B")
    backfill.add_argument("--step", default=None, help="1d, 7d for dates; 1, 10 for whole numbers")
    backfill.add_argument("--parallel", type=_positive_int, default=1, metavar="N")

    cache = commands.add_parser("cache", help="the outputs kept for --cache and --resume")
    cache.add_argument("action", choices=["list", "clear"], help="list the kept outputs, or delete them all")
    cache.add_argument("--json", action="store_true", help="print JSON (list)")


def _add_params(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a parameter for the notebook's parameters cell (repeatable)",
    )


def _add_logging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-format", choices=["text", "json"], default=None, help="json: JSON lines")
    parser.add_argument("--log-file", metavar="PATH", default=None, help="a rotating log file")


def _duration(text: str) -> float:
    from etl_nb.durations import parse_duration

    try:
        return parse_duration(text)
    except EtlError as exc:
        raise argparse.ArgumentTypeError(str(exc).rstrip(".")) from None


def _count(text: str) -> int:
    if not text.isdigit() or int(text) > 100:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number from 0 to 100")
    return int(text)


def _add_lineage(commands: Any) -> None:
    lineage = commands.add_parser("lineage", help="a notebook's column lineage, without running it")
    lineage.add_argument("notebook", metavar="NB")
    lineage.add_argument("--json", action="store_true", help="print JSON")


def _positive_int(text: str) -> int:
    problem = count_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return int(text)


# jsonschema loads rfc3987_syntax when it is installed (JupyterLab brings it) to check "iri"
# formats: 39 grammars compiled at import, about 0.4 s, and as long again to free them at exit.
# nbformat validates notebooks without format checks, and this process runs no user code.
UNUSED_IMPORTS = ("rfc3987_syntax",)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``etl-nb``; returns the exit code."""
    for name in UNUSED_IMPORTS:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # its import fails: skipped
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # not required by argparse, so that `etl-nb --bogus` names the option
        parser.error(f"give a command: {', '.join(_COMMANDS)}")
    try:
        _settle_project(args)
        return int(_COMMANDS[args.command](args))
    except BrokenPipeError:  # `etl-nb runs --json | head`: the reader has all it wants
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except EtlError as exc:
        print(f"etl-nb: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("etl-nb: interrupted", file=sys.stderr)
        return 130


def _settle_project(args: argparse.Namespace) -> None:
    """A notebook's runs go to its project's history (DESIGN.md section 3), wherever etl-nb starts.

    ``ETL_NB_HOME`` wins; else the project of the notebook's folder is fixed
    here, once, so the store, the run folders and the kernels all agree.
    """
    notebook = getattr(args, "notebook", None)
    if notebook and not os.environ.get(HOME_ENV):
        os.environ[HOME_ENV] = str(project_home(Path(notebook).expanduser().resolve().parent))


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's flush at exit does not fail on the closed pipe again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError, ValueError):  # stdout is no file (a test's capture): nothing to do
        os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _run(args: argparse.Namespace) -> int:
    if args.dry_run:
        from etl_nb.pipeline import DRY_RUN_ENV

        if args.backend != "local":
            raise EtlError("--dry-run runs on this machine: drop --backend celery.")
        os.environ[DRY_RUN_ENV] = "1"  # the kernel inherits it: every load there is a dry-run
    if (args.cache or args.resume) and args.backend != "local":
        raise EtlError("--cache and --resume run on this machine: drop --backend celery.")
    _ask_kernel_for_cache(args)
    kernel = _early_kernel(args)
    try:
        from etl_nb.runs.executor import execute_claimed, reap
        from etl_nb.runs.submit import dispatch, queue_run
        from etl_nb.store.queue import ACTIVE, RunQueue

        reap()
        run_id = queue_run(
            args.notebook,
            dict(args.param),
            trigger="manual",
            backend=args.backend,
            timeout=args.timeout,
            run_id=kernel.run_id if kernel else None,
        )
        if args.backend == "local":
            # In this process, holding the run's lease: a killed `etl-nb run` is reaped as worker lost.
            execute_claimed(run_id, progress=sys.stderr.isatty(), kernel=kernel)
        else:
            dispatch(run_id, args.backend)
            queue = RunQueue()
            while (queue.status(run_id) or "failed") in ACTIVE:
                time.sleep(0.5)
                reap()
        _print_run(run_id)  # while the kernel exits
        return EXIT_OK if RunQueue().status(run_id) == "success" else EXIT_FAILED_RUN
    finally:
        if kernel is not None:
            kernel.close()  # waits for it to exit; kills it when the run never reached it


def _early_kernel(args: argparse.Namespace) -> EarlyKernel | None:
    """The run's kernel, started before the run is checked and recorded (``etl_nb.runs.kernel``).

    Starting a kernel takes about as long as the checks: side by side, the notebook starts
    sooner. None for another backend, or when the kernel cannot start here.
    """
    if args.backend != "local":
        return None
    from etl_nb.project import default_store_url
    from etl_nb.runs.kernel import EarlyKernel, find_notebook

    source = find_notebook(args.notebook)
    return EarlyKernel.start(source, default_store_url()) if source else None


def _ask_kernel_for_cache(args: argparse.Namespace) -> None:
    """``--cache`` and ``--resume`` reach the kernel's ``%etl run`` through its environment.

    A resume is checked here, before a kernel starts: an unknown id, another
    pipeline's run or a run that did not fail is a one-line error.
    """
    if not args.cache and not args.resume:
        return
    import os

    from etl_nb.engine.cache import check_resumable, recorded_run_environment
    from etl_nb.store import RunStore

    resume = check_resumable(RunStore(), pipeline_name(args.notebook), args.resume) if args.resume else None
    os.environ.update(recorded_run_environment(cache=args.cache, resume=resume))


def _cache(args: argparse.Namespace) -> int:
    from etl_nb.engine.cache_file import OutputCache, cache_path

    cache = OutputCache(cache_path())
    if args.action == "clear":
        print(f"cleared {cache.clear()} kept outputs from {cache.path}")
        return EXIT_OK
    entries = cache.entries()
    if args.json:
        print(json.dumps([e.__dict__ for e in entries], indent=2, default=str))
        return EXIT_OK
    from rich.table import Table

    table = Table("pipeline", "step", "rows", "size", "kept by run", "last used (UTC)", "for", box=None)
    for e in entries:
        kept_for = f"resume of {e.pinned_by}" if e.pinned_by else "cache"
        used = e.used_at.strftime("%m-%d %H:%M:%S")
        table.add_row(
            escape(e.pipeline), escape(e.step), f"{e.rows:,}", _size(e.bytes), e.run_id, used, kept_for
        )
    _console().print(table if entries else f"The cache is empty ({cache.path}).")
    return EXIT_OK


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB"):
        if value < 1024:
            return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def _runs(args: argparse.Namespace) -> int:
    from etl_nb.runs.executor import reap
    from etl_nb.runs.metrics import recent_runs, run_dict, trends
    from etl_nb.store.queue import RunQueue

    reap()
    pipeline = args.pipeline
    if pipeline and pipeline.endswith(".ipynb"):
        pipeline = pipeline_name(pipeline)
    records = recent_runs(pipeline=pipeline, status=args.status, limit=args.limit)
    if args.json:
        queue = RunQueue()
        print(json.dumps([run_dict(r, queue) for r in records], indent=2, default=str))
        return EXIT_OK
    from rich.table import Table

    table = Table(box=None)
    # The run id is what `etl-nb show` takes: never cut it; the error gives way first.
    table.add_column("run", no_wrap=True, min_width=24)
    table.add_column("pipeline", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("started (UTC)", no_wrap=True)
    table.add_column("seconds", justify="right", no_wrap=True)
    table.add_column("rows", justify="right", no_wrap=True)
    with_errors = any(r.error for r in records)
    if with_errors:
        table.add_column("error", overflow="ellipsis")
    for r in records:
        cells = [
            r.id,
            escape(r.pipeline),
            _status(r.status),
            r.started_at.strftime("%m-%d %H:%M:%S"),
            f"{r.seconds:.2f}" if r.seconds is not None else "",
            "" if r.rows is None else f"{r.rows:,}",
        ]
        first_line = escape(((r.error or "").splitlines() or [""])[0][:80])
        table.add_row(*cells, *([first_line] if with_errors else []))
    _console().print(table if records else "No runs recorded yet: run a pipeline with 'etl-nb run NB'.")
    if pipeline and records:
        trend = trends(records)
        median = trend["median_seconds"]
        _console().print(
            f"seconds (oldest to newest): {trend['seconds_trend']}"
            + (f"  median {median:.2f}s" if median is not None else "")
            + f"\nrows    (oldest to newest): {trend['rows_trend'] or '-'}"
            + f"\n{trend['failed']} of {trend['runs']} runs failed"
        )
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    from etl_nb.runs.executor import reap
    from etl_nb.runs.metrics import run_dict
    from etl_nb.store import RunStore
    from etl_nb.store.queue import RunQueue

    if not args.run_id.strip():
        raise EtlError("Give a run id (or a unique prefix of one). See 'etl-nb runs'.")
    reap()
    record = RunStore().get_run(args.run_id)
    if record is None:
        raise EtlError(
            f"No run '{args.run_id}' in the store (or the prefix matches several). See 'etl-nb runs'."
        )
    if args.json:
        print(
            json.dumps(
                {**run_dict(record, RunQueue()), "resumed_from": _resumed_from(record.id)},
                indent=2,
                default=str,
            )
        )
        return EXIT_OK
    _print_run(record.id)
    return EXIT_OK


def _print_run(run_id: str) -> None:
    from rich.table import Table

    from etl_nb.store import RunStore

    record = RunStore().get_run(run_id)
    if record is None:
        raise EtlError(f"Run '{run_id}' was not recorded.")
    console = _console()
    seconds = f" in {record.seconds:.2f}s" if record.seconds is not None else ""
    console.print(f"run {record.id} of [bold]{escape(record.pipeline)}[/]: {_status(record.status)}{seconds}")
    if record.params:
        console.print("params: " + ", ".join(f"{k}={v!r}" for k, v in record.params.items()))
    resumed = _resumed_from(record.id)
    if resumed:
        console.print(f"resumed from run {resumed}")
    explained = any(step.why for step in record.steps)
    table = Table("step", "status", "rows", "seconds", *(["why"] if explained else []), box=None)
    notes = []
    for step in record.steps:
        rows = "" if step.rows is None else f"{step.rows:,}"
        why = [escape(step.why or "")] if explained else []
        table.add_row(escape(step.step), _status(step.status), rows, f"{step.seconds or 0:.3f}", *why)
        note = load_summary(step.detail) or (step.error if step.status == "warned" else None)
        if note:
            notes.append(f"{escape(step.step)}: {escape(note)}")
    if record.steps:
        console.print(table)
    for note in notes:
        console.print(note)
    if record.error:
        console.print(f"[red]{escape(record.error)}[/]", markup=True, highlight=False)
    if record.output_notebook:
        console.print(f"notebook: {record.output_notebook}")


def _resumed_from(run_id: str) -> str | None:
    from etl_nb.store import RunStore
    from etl_nb.store.fingerprints import FingerprintStore

    return FingerprintStore(RunStore()).resumed_from(run_id)


def _console() -> Any:
    from rich.console import Console

    # Piped into a file or another program, lines need not fit 80 columns.
    # Step ids like "load:o:shop:t" are data, not emoji codes.
    return Console(width=None if sys.stdout.isatty() else 160, emoji=False, highlight=False)


def _status(status: str) -> str:
    colours = {"success": "green", "failed": "red", "running": "yellow", "warned": "yellow"}
    colour = colours.get(status, "white")
    return f"[{colour}]{status}[/]"


def _schedule(args: argparse.Namespace) -> int:
    from etl_nb.runs import ScheduleStore, add_schedule

    if args.action == "add":
        added = add_schedule(
            args.notebook,
            args.cron,
            timezone=args.tz,
            params=dict(args.param),
            timeout=args.timeout,
            retries=args.retries,
            alerts=args.alert,
            alert_on=args.alert_on,
        )
        shown = added.to_dict()
        print(
            f"added schedule {added.id}: {added.notebook} at '{added.cron}' ({added.timezone}), "
            f"next {shown['next_slot']} ({shown['next_slot_utc']} UTC)"
        )
        return EXIT_OK
    store = ScheduleStore()
    if args.action == "list":
        return _list_schedules(store, as_json=args.json)
    changed = getattr(store, args.action)(args.schedule_id)
    print(f"{_past(args.action)} schedule {changed.id} ({changed.notebook})")
    return EXIT_OK


def _past(verb: str) -> str:
    return {"pause": "paused", "resume": "resumed", "remove": "removed"}[verb]


def _list_schedules(store: Any, *, as_json: bool) -> int:
    found = [s.to_dict() for s in store.list()]
    if as_json:
        print(json.dumps(found, indent=2, default=str))
        return EXIT_OK
    if not found:
        print("No schedules yet: add one with 'etl-nb schedule add NB --cron \"0 6 * * *\"'.")
        return EXIT_OK
    from rich.table import Table

    table = Table(box=None)
    for name in ("id", "notebook", "cron", "zone", "next (zone)", "next (UTC)", "last run", "state"):
        table.add_column(name, no_wrap=True)
    for s in found:
        last = s["last_run"]
        table.add_row(
            s["id"],
            escape(s["notebook"]),
            escape(s["cron"]),
            s["timezone"],
            (s["next_slot"] or "")[:16].replace("T", " "),
            (s["next_slot_utc"] or "")[:16].replace("T", " "),
            _status(last["status"]) + f" {last['id']}" if last else "",
            "paused" if s["paused"] else "active",
        )
    _console().print(table)
    return EXIT_OK


def _scheduler(args: argparse.Namespace) -> int:
    from etl_nb.runs.logs import configure_logging
    from etl_nb.runs.scheduler import Scheduler

    configure_logging(args.log_format, args.log_file)
    Scheduler(backend=args.backend, interval=args.interval).run()
    return EXIT_OK


def _worker(args: argparse.Namespace) -> int:
    from etl_nb.runs.logs import configure_logging

    configure_logging(args.log_format, args.log_file)
    from etl_nb.runs.submit import celery_missing

    try:  # Celery is heavy and an optional extra: imported only for this command
        from etl_nb.runs.celery_worker import run_worker
    except ImportError as exc:
        raise celery_missing(exc) from None
    run_worker(concurrency=args.concurrency)
    return EXIT_OK


def _backfill(args: argparse.Namespace) -> int:
    from etl_nb.runs.backfill import run_backfill

    def report(value: str, status: str, run_id: str) -> None:
        print(f"{args.param}={value}: {status} (run {run_id})", flush=True)

    done = run_backfill(
        args.notebook,
        args.param,
        args.start,
        args.end,
        step=args.step,
        parallel=args.parallel,
        on_done=report,
    )
    verb = "resumed" if done.resumed else "ran"
    good = len(done.values) - len(done.failed)
    print(f"backfill {done.id} {verb}: {good} of {len(done.values)} values succeeded")
    return EXIT_FAILED_RUN if done.failed else EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from etl_nb.notebook.export import export_notebook

    # As %etl export does: a plain notebook unless --to or the output's name asks for a script.
    script = args.to == "py" or (args.to is None and (args.output or "").endswith(".py"))
    written = export_notebook(args.notebook, to="py" if script else "ipynb", output=args.output)
    print(f"wrote {written}")
    return EXIT_OK


def _lineage(args: argparse.Namespace) -> int:
    from etl_nb.lineage import last_good_columns, pipeline_lineage
    from etl_nb.notebook.reader import read_notebook
    from etl_nb.store import RunStore

    notebook = read_notebook(args.notebook)
    if not notebook.is_pipeline:
        raise EtlError(f"'{args.notebook}' has no %%etl cells, so it has no lineage.")
    # Columns seen in the last good run fill in what the SQL alone cannot say (SELECT *).
    types = last_good_columns(RunStore(), notebook.spec)
    folder = notebook.path.parent if notebook.path else "."
    found = pipeline_lineage(
        notebook.spec, base_dir=folder, columns={k: list(v) for k, v in types.items()}, types=types
    )
    print(json.dumps(found.to_dict(), indent=2) if args.json else found.text())
    return EXIT_OK


_COMMANDS = {
    "run": _run,
    "runs": _runs,
    "show": _show,
    "schedule": _schedule,
    "scheduler": _scheduler,
    "worker": _worker,
    "backfill": _backfill,
    "export": _export,
    "lineage": _lineage,
    "cache": _cache,
}

if __name__ == "__main__":
    raise SystemExit(main())
