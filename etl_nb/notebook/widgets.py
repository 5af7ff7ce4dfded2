"""Run progress for ``%etl run``: an ipywidgets bar, with a text line for everything else.

``RunProgress`` is a ``RunListener``. It puts one display on the page and
updates it in place (a ``display_id``): where widgets render (JupyterLab,
Notebook) the bundle shows a progress bar and a label; where they do not
(papermill's stored outputs, nbval, a terminal) the same bundle's
``text/plain`` line says how far the run got. When the run ends, ``finish``
replaces the bar with the run's summary, so a saved notebook keeps a
readable table and no dangling widget.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from etl_nb.notebook.preview import Bundle, rows_text, seconds

if TYPE_CHECKING:
    from etl_nb.results import StepResult

_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


class RunProgress:
    """Shows steps done, the current step, rows so far and elapsed time while a run goes.

    ``widgets=False`` (a terminal, no kernel) shows text only. ``display`` is
    injectable for tests; by default it is IPython's ``display``.
    """

    def __init__(self, pipeline: str, total: int, *, widgets: bool = True, display: Any = None) -> None:
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
        if widgets:
            self._make_widgets()
        if display is None:
            from IPython.display import display as ipython_display

            display = ipython_display
        self._handle = display(self.bundle(), raw=True, display_id=True)

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
        self._handle.update(self.bundle(), raw=True)

    def finish(self, final: Bundle) -> None:
        """Replace the bar with ``final`` (the run's summary) and release the widgets."""
        self._handle.update(final, raw=True)
        if self._box is not None:
            self._box.close()
            self._bar.close()
            self._label.close()
