"""The run progress listener: a widget bar with a text fallback, replaced by the summary at the end."""

from __future__ import annotations

from typing import Any

from etl_nb.notebook.widgets import RunProgress
from etl_nb.results import StepResult

WIDGET = "application/vnd.jupyter.widget-view+json"


class FakeDisplay:
    """Records what a frontend would show for one display id."""

    def __init__(self) -> None:
        self.shown: list[dict[str, Any]] = []

    def __call__(self, bundle: dict[str, Any], *, raw: bool, display_id: bool) -> FakeDisplay:
        assert raw
        assert display_id
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
