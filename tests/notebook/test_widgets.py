"""The run progress listener: a widget bar with a text fallback, replaced by the summary at the end."""

from __future__ import annotations

import io
from typing import Any

from etl_nb.notebook.widgets import RunProgress
from etl_nb.results import StepResult

WIDGET = "application/vnd.jupyter.widget-view+json"


class FakeDisplay:
    """Records what a frontend would show for one display id."""

    def __init__(self) -> None:
        self.shown: list[dict[str, Any]] = []

    def __call__(self, bundle: dict[str, Any], *, raw: bool, display_id: bool = False) -> FakeDisplay:
        assert raw
        self.shown.append(bundle)
        return self

    def update(self, bundle: dict[str, Any], *, raw: bool) -> None:
        self.shown.append(bundle)


def test_progress_shows_a_widget_and_a_text_line_then_the_summary() -> None:
    screen = FakeDisplay()
    progress = RunProgress("demo", 2, widgets=True, display=screen)
    assert WIDGET in screen.shown[0]
    progress.step_started("orders", 0, 2)
    assert screen.shown[-1]["text/plain"].startswith("etl run demo: 0/2 steps \u00b7 running orders \u00b7 ")
    progress.step_finished(StepResult("orders", "extract", "success", rows=1500))
    progress.step_started("load:orders", 1, 2)
    progress.step_finished(StepResult("load:orders", "load", "failed", rows=1500))
    text = screen.shown[-1]["text/plain"]
    assert text.startswith("etl run demo: 2/2 steps \u00b7 1,500 rows \u00b7 ")
    assert text.endswith(" \u00b7 failed: load:orders")
    assert progress._bar.value == 2
    assert progress._bar.bar_style == "danger"
    progress.finish({"text/plain": "summary"})
    assert screen.shown[-1] == {"text/plain": "summary"}


def test_progress_without_widgets_is_text_only() -> None:
    screen = FakeDisplay()
    progress = RunProgress("demo", 1, widgets=False, display=screen)
    progress.step_started("orders", 0, 1)
    assert all(set(bundle) == {"text/plain"} for bundle in screen.shown)


class Terminal(io.StringIO):
    """What a terminal receives; ``tty=False`` is output piped to a file or a log."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def _run_three_steps(progress: RunProgress) -> None:
    for index, step in enumerate(["orders", "rates", "revenue"]):
        progress.step_started(step, index, 3)
        progress.step_finished(StepResult(step, "transform", "success", rows=10))
    progress.finish({"text/plain": "summary"})


def test_in_a_terminal_progress_is_one_line_rewritten_in_place_then_the_summary() -> None:
    screen, terminal = FakeDisplay(), Terminal(tty=True)
    _run_three_steps(RunProgress("demo", 3, widgets=True, terminal=True, display=screen, stream=terminal))

    written = terminal.getvalue()
    assert "\n" not in written
    updates = written.split("\r\x1b[K")
    assert updates[0] == ""
    assert updates[-2].startswith("etl run demo: 3/3 steps \u00b7 30 rows \u00b7 ")
    assert updates[-1] == ""  # the line is cleared for the summary
    assert screen.shown == [{"text/plain": "summary"}]


def test_piped_to_a_file_a_terminal_run_writes_only_the_summary() -> None:
    screen, log = FakeDisplay(), Terminal(tty=False)
    _run_three_steps(RunProgress("demo", 3, widgets=False, terminal=True, display=screen, stream=log))
    assert log.getvalue() == ""
    assert screen.shown == [{"text/plain": "summary"}]
