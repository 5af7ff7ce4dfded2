"""``%etl`` and ``%%etl``: the magics IPython calls, and ``%load_ext etl_nb``.

Loading the extension only registers the magics. What a line or cell does
lives in ``etl_nb.notebook.session``, imported with the notebook's pipeline
(and so DuckDB, Polars and the run store) when the first ``%etl`` line or
``%%etl`` cell runs: ``%load_ext etl_nb`` costs no engine start-up.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand

from etl_nb.errors import EtlError

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from etl_nb.notebook.session import NotebookSession
    from etl_nb.pipeline import Pipeline

__all__ = ["EtlMagics", "current_pipeline", "finish_recorded_run", "load_ipython_extension"]

_sessions: dict[int, NotebookSession] = {}
# The kernel's folder when `%load_ext etl_nb` ran, until the shell's first cell builds its session.
_loaded_in: dict[int, Path] = {}


def _session_for(shell: InteractiveShell) -> NotebookSession:
    session = _sessions.get(id(shell))
    if session is None or session.shell is not shell:
        from etl_nb.notebook.session import NotebookSession

        session = NotebookSession.create(shell, _loaded_in.pop(id(shell), None))
        _sessions[id(shell)] = session
    return session


@magics_class
class EtlMagics(Magics):
    """The ``%etl`` line magic and the ``%%etl`` cell magic."""

    @no_var_expand
    @line_cell_magic
    def etl(self, line: str, cell: str | None = None) -> None:
        """Declare and run a pipeline step, or act on the pipeline. See docs/grammar.md.

        %%etl extract NAME --from CONN      (body: SQL or YAML)
        %%etl transform NAME [--python]     (body: DuckDB SQL or Python)
        %%etl check STEP [--warn]           (body: YAML list of rules)
        %etl connect NAME URL
        %etl load STEP --to CONN (--table T | --path P) [--mode M] [--key K]
        %etl run [--only A,B] [--from A] | dag | runs [--limit N] | show STEP [--limit N] | reset
        """
        assert self.shell is not None
        session = _session_for(self.shell)
        session.execute(self._expand(line), cell)

    def _expand(self, line: str) -> str:
        """Expand ``{expr}`` and ``$name`` from the notebook, each to one quoted argument (not ``${VAR}``).

        As in IPython, a line with a field that does not evaluate runs as written.
        """
        if "$" not in line and "{" not in line:
            return line  # most lines: no copy of the namespace
        from etl_nb.notebook.cells import NotExpandable, expand

        namespace = self._namespace()

        def evaluate(expression: str) -> str | None:
            try:
                return format(eval(expression, namespace))  # what IPython's var_expand evaluates
            except Exception:
                return None

        try:
            return expand(line, evaluate)
        except NotExpandable:
            return line

    def _namespace(self) -> dict[str, Any]:
        """The notebook's names, and the locals of the user's frame when a function runs the magic."""
        shell = self.shell
        assert shell is not None
        namespace = dict(shell.user_ns)
        frame = sys._getframe(0)
        while frame is not None and frame.f_globals is not shell.user_global_ns:
            frame = frame.f_back  # type: ignore[assignment]
        if frame is not None:  # none: called from library code, the namespace alone
            namespace.update(frame.f_locals)
        return namespace


def finish_recorded_run() -> None:
    """End of a recorded run: ``etl-nb run`` appends a cell calling this (``session.finish_recorded_run``)."""
    from IPython import get_ipython

    shell = get_ipython()
    session = _sessions.get(id(shell)) if shell is not None else None
    if session is not None:  # no %etl cell ran: nothing was declared
        from etl_nb.notebook.session import finish_recorded_run as finish

        finish(session)


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """``%load_ext etl_nb``: register the magics; the notebook's pipeline starts with its first cell."""
    _loaded_in[id(ipython)] = Path.cwd()
    ipython.register_magics(EtlMagics)


def current_pipeline() -> Pipeline:
    """The pipeline this notebook's ``%%etl`` cells built (``etl_nb.current()``)."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        raise EtlError("etl_nb.current() needs a notebook or IPython: run %load_ext etl_nb there first.")
    return _session_for(shell).pipeline
