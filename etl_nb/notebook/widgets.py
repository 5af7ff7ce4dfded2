"""Run progress for ``%etl run``: an ipywidgets bar, with a text line for everything else.

``RunProgress`` is a ``RunListener`` that shows one line of progress however
the notebook is shown, and replaces it with the run's summary at the end:

- in a notebook frontend (JupyterLab, Notebook, VS Code) one display holds a
  progress bar and a label, updated in place (a ``display_id``);
- in a kernel without one (papermill, nbval, ``jupyter console``) the same
  display holds only the ``text/plain`` line, which the client replaces at
  each update, so the executed notebook keeps one output and no widget state;
- in a terminal IPython (no kernel) the line is rewritten in place with a
  carriage return, and left out when the output is not a terminal (a log
  gets the summary only).
"""

from __future__ import annotations

import sys
import time
from typing import IO, TYPE_CHECKING, Any

from etl_nb.notebook.preview import Bundle, rows_text, seconds

if TYPE_CHECKING:
    from etl_nb.results import StepResult

_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
_CLEAR_LINE = "\r\x1b[K"


class RunProgress:
    """Shows steps done, the current step, rows so far and elapsed time while a run goes.

    ``widgets=False`` shows text only; ``terminal=True`` (IPython without a
    kernel) writes that text to ``stream`` (stdout) in place instead of a
    display. ``display`` is injectable for tests; by default it is IPython's.
    """

    def __init__(
        self,
        pipeline: str,
        total: int,
        *,
        widgets: bool = True,
        terminal: bool = False,
        display: Any = None,
        stream: IO[str] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.total = total
        self.done = 0
        self.rows = 0
        self.current: str | None = None
        self.failed: list[str] = []
        self.started = time.perf_counter()
        self._bar: Any = None
        self._label: Any = None
        self._box: Any = None
        if widgets and not terminal:
            self._make_widgets()
        if display is None:
            from IPython.display import display as ipython_display

            display = ipython_display
        self._display = display
        self._stream = (stream or sys.stdout) if terminal else None
        self._live = self._stream is not None and self._stream.isatty()
        self._handle = None if terminal else display(self.bundle(), raw=True, display_id=True)
        self._write_line()

    def _make_widgets(self) -> None:
        try:
            import ipywidgets
        except ImportError:  # the notebook extra without ipywidgets: text only
            return
        self._bar = ipywidgets.IntProgress(value=0, min=0, max=max(self.total, 1), description="etl run")
        self._label = ipywidgets.HTML(value="")
        self._box = ipywidgets.HBox([self._bar, self._label])

    # --- RunListener ----------------------------------------------------------------------

    def step_started(self, step: str, index: int, total: int) -> None:
        """A step begins: show it as the current one."""
        self.total = total
        self.current = step
        self._update()

    def step_finished(self, outcome: StepResult) -> None:
        """A step ended: count it, add its rows, remember a failure."""
        self.done += 1
        if outcome.kind != "load" and outcome.rows:
            self.rows += outcome.rows
        if outcome.status == "failed":
            self.failed.append(outcome.step)
        self.current = None
        self._update()

    # --- display --------------------------------------------------------------------------

    def text(self) -> str:
        """``etl run quickstart: 3/7 steps · running revenue · 1,234 rows · 0.42 s``."""
        parts = [f"etl run {self.pipeline}: {self.done}/{self.total} steps"]
        if self.current:
            parts.append(f"running {self.current}")
        if self.rows:
            parts.append(rows_text(self.rows))
        parts.append(seconds(time.perf_counter() - self.started))
        if self.failed:
            parts.append(f"failed: {', '.join(self.failed)}")
        return " · ".join(parts)

    def bundle(self) -> Bundle:
        """The current display bundle: the widget view (when there is one) and the text line."""
        bundle: dict[str, Any] = {"text/plain": self.text()}
        if self._box is not None:
            bundle[_WIDGET_MIME] = {"version_major": 2, "version_minor": 0, "model_id": self._box.model_id}
        return bundle

    def _update(self) -> None:
        if self._bar is not None:
            self._bar.max = max(self.total, 1)
            self._bar.value = self.done
            self._bar.bar_style = "danger" if self.failed else ""
            self._label.value = self.text().split(": ", 1)[1]
        if self._handle is not None:
            self._handle.update(self.bundle(), raw=True)
        self._write_line()

    def _write_line(self, text: str | None = None) -> None:
        """In a terminal: the progress line written over the last one (nothing when output is a file)."""
        if self._stream is None or not self._live:
            return
        self._stream.write(_CLEAR_LINE + (self.text() if text is None else text))
        self._stream.flush()

    def finish(self, final: Bundle) -> None:
        """Replace the bar with ``final`` (the run's summary) and release the widgets."""
        if self._handle is not None:
            self._handle.update(final, raw=True)
        else:
            self._write_line("")  # the summary takes the progress line's place
            self._display(final, raw=True)
        if self._box is not None:
            self._box.close()
            self._bar.close()
            self._label.close()
