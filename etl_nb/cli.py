"""``etl-nb``: run notebooks as recorded pipelines, and read the run history.

Every user mistake ends with one line on stderr saying what to fix and exit
code 2; a failed run exits 1; a bug in etl_nb still shows its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.markup import escape

from etl_nb.errors import EtlError

EXIT_OK, EXIT_FAILED_RUN, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports mistakes in one line with the fix, exit code 2."""

    def error(self, message: str) -> Any:
        self.exit(EXIT_USAGE, f"etl-nb: error: {message}. See '{self.prog} --help'.\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``etl-nb`` command line."""
    parser = _Parser(prog="etl-nb", description="Notebook-native ETL: run, inspect and export pipelines.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    run = commands.add_parser("run", help="run a notebook as one recorded pipeline run (papermill)")
    run.add_argument("notebook", metavar="NB")
    _add_params(run)
    run.add_argument("--backend", choices=["local"], default="local", help="where the run executes")
    run.add_argument("--timeout", type=float, default=None, help="seconds a cell may run")
    run.add_argument("--cache", action="store_true", help="reuse the outputs of unchanged steps")
    run.add_argument("--resume", metavar="RUN_ID", help="run a failed run again from the step that failed")

    runs = commands.add_parser("runs", help="recent runs, newest first")
    runs.add_argument("--pipeline", metavar="NB", help="only this notebook's (or pipeline's) runs")
    runs.add_argument("--limit", type=_positive_int, default=20)
    runs.add_argument("--json", action="store_true", help="print JSON")

    show = commands.add_parser("show", help="one run: steps, rows, times, error")
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument("--json", action="store_true", help="print JSON")

    cache = commands.add_parser("cache", help="the outputs kept for --cache and --resume")
    cache.add_argument("action", choices=["list", "clear"], help="list the kept outputs, or delete them all")
    cache.add_argument("--json", action="store_true", help="print JSON (list)")

    export = commands.add_parser("export", help="write a notebook as a plain script or notebook (no magics)")
    export.add_argument("notebook", metavar="NB")
    export.add_argument("--to", required=True, choices=["py", "ipynb"], help="a script or a plain notebook")
    export.add_argument(
        "-o", "--output", metavar="PATH", help="file to write (default: NB.py or NB_plain.ipynb beside NB)"
    )
    return parser


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


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number above 0")
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``etl-nb``; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(_COMMANDS[args.command](args))
    except EtlError as exc:
        print(f"etl-nb: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("etl-nb: interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    from etl_nb.runs.execute import check_parameters, execute_notebook

    params = check_parameters(dict(args.param))
    _ask_kernel_for_cache(args)
    result = execute_notebook(args.notebook, params, timeout=args.timeout, progress=sys.stderr.isatty())
    _print_run(result.run_id)
    return EXIT_OK if result.status == "success" else EXIT_FAILED_RUN


def _ask_kernel_for_cache(args: argparse.Namespace) -> None:
    """``--cache`` and ``--resume`` reach the kernel's ``%etl run`` through its environment.

    A resume is checked here, before a kernel starts: an unknown id, another
    pipeline's run or a run that did not fail is a one-line error.
    """
    if not args.cache and not args.resume:
        return
    import os

    from etl_nb.engine.cache import check_resumable, recorded_run_environment
    from etl_nb.notebook.reader import pipeline_name
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
    from etl_nb.notebook.reader import pipeline_name
    from etl_nb.store import RunStore

    pipeline = args.pipeline
    if pipeline and pipeline.endswith(".ipynb"):
        pipeline = pipeline_name(pipeline)
    records = RunStore().list_runs(pipeline=pipeline, limit=args.limit)
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=2, default=str))
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
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    from etl_nb.store import RunStore

    record = RunStore().get_run(args.run_id)
    if record is None:
        raise EtlError(
            f"No run '{args.run_id}' in the store (or the prefix matches several). See 'etl-nb runs'."
        )
    if args.json:
        print(
            json.dumps({**record.to_dict(), "resumed_from": _resumed_from(record.id)}, indent=2, default=str)
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
    for step in record.steps:
        rows = "" if step.rows is None else f"{step.rows:,}"
        why = [escape(step.why or "")] if explained else []
        table.add_row(escape(step.step), _status(step.status), rows, f"{step.seconds or 0:.3f}", *why)
    if record.steps:
        console.print(table)
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


def _export(args: argparse.Namespace) -> int:
    from etl_nb.notebook.export import export_notebook

    written = export_notebook(args.notebook, to=args.to, output=args.output)
    print(f"wrote {written}")
    return EXIT_OK


_COMMANDS = {"run": _run, "runs": _runs, "show": _show, "export": _export, "cache": _cache}

if __name__ == "__main__":
    raise SystemExit(main())
