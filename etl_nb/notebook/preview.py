"""What a cell shows: display bundles with ``text/html`` and a ``text/plain`` fallback.

Each object here has ``_repr_mimebundle_``, so Jupyter renders the HTML and a
terminal or a plain log (papermill, nbval) gets readable text. They hold only
what they show (a few rows, a few numbers), never a connection.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from etl_nb.results import load_summary

if TYPE_CHECKING:
    import polars as pl

    from etl_nb.pipeline import RunResult
    from etl_nb.store.runs import RunRecord

Bundle = dict[str, str]

_STYLE = (
    "<style>.etl-nb table{border-collapse:collapse;font-size:12px}"
    ".etl-nb th,.etl-nb td{padding:2px 8px;text-align:left;border-bottom:1px solid #ddd}"
    ".etl-nb th small{color:#777;font-weight:normal}"
    ".etl-nb .failed{color:#c00}.etl-nb .warned{color:#b60}</style>"
)


def seconds(value: float | None) -> str:
    """A duration for people: ``12 ms`` below a second, ``1.23 s`` above."""
    if value is None:
        return ""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s"


def rows_text(rows: int | None) -> str:
    """``1 row``, ``1,234 rows``; empty when unknown."""
    if rows is None:
        return ""
    return f"{rows:,} row" + ("" if rows == 1 else "s")


def _cell(value: Any, width: int = 80) -> str:
    text = "null" if value is None else str(value)
    if len(text) > width:
        text = text[: width - 1] + "…"
    return html.escape(text)


def html_table(header: Sequence[str], rows: Iterable[Sequence[Any]], classes: Sequence[str] = ()) -> str:
    """A small HTML table; ``classes`` gives each row a CSS class (``failed``, ``warned``)."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        css = f' class="{classes[i]}"' if i < len(classes) and classes[i] else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def text_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A fixed-width text table for terminals and logs."""
    cells = [[str(h) for h in header]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# The variables pl.Config sets: setting them directly costs microseconds, pl.Config half a millisecond.
_POLARS_FORMAT = {
    "POLARS_FMT_TABLE_HIDE_DATAFRAME_SHAPE_INFORMATION": "1",
    "POLARS_FMT_TABLE_HIDE_COLUMN_DATA_TYPES": "1",
    "POLARS_FMT_MAX_COLS": "-1",
}


def _polars_text(frame: pl.DataFrame, types: Sequence[str]) -> str:
    """Polars' table showing every row of ``frame``, each column's ``types`` entry under its name."""
    wanted = {**_POLARS_FORMAT, "POLARS_FMT_MAX_ROWS": str(max(frame.height, 1))}
    saved = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    # Polars would print its own dtypes (i64, str); the header says the DuckDB type instead.
    headers = {name: f"{name}\n---\n{kind}" for name, kind in zip(frame.columns, types, strict=True)}
    try:
        return str(frame.rename(headers))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class StepPreview:
    """The first rows of a step's table, its row count, schema and time taken.

    ``types`` are the columns' DuckDB types (``BIGINT``, ``VARCHAR``, ``DATE``),
    the dialect the user writes SQL in; both the HTML and the text show them.
    """

    name: str
    frame: pl.DataFrame
    rows: int | None
    seconds: float | None = None
    kind: str = ""
    types: list[str] = field(default_factory=list)

    def column_types(self) -> list[str]:
        """Each column's type: the DuckDB name given, else Polars' own."""
        if len(self.types) == self.frame.width:
            return list(self.types)
        return [str(dtype) for dtype in self.frame.dtypes]

    def headline(self) -> str:
        """``transform revenue: 5 rows x 3 columns in 12 ms`` (with a times sign)."""
        parts = [f"{self.kind} {self.name}".strip() + ":"]
        if self.rows is not None:
            parts.append(rows_text(self.rows))
            parts.append("\u00d7")
        parts.append(f"{self.frame.width} column" + ("" if self.frame.width == 1 else "s"))
        if self.seconds is not None:
            parts.append(f"in {seconds(self.seconds)}")
        return " ".join(parts)

    def footer(self) -> str:
        """Which rows the preview shows, when it is not all of them."""
        if self.rows is not None and self.rows > self.frame.height:
            return f"first {self.frame.height:,} of {self.rows:,} rows"
        return ""

    def text(self) -> str:
        """The preview as text: headline, then a table with each column's type under its name."""
        table = _polars_text(self.frame, self.column_types())
        return "\n".join(p for p in (self.headline(), table, self.footer()) if p)

    def html(self) -> str:
        """The preview as an HTML table with each column's type under its name."""
        header = [
            f"{html.escape(name)}<br><small>{html.escape(kind)}</small>"
            for name, kind in zip(self.frame.columns, self.column_types(), strict=True)
        ]
        footer = self.footer()
        return (
            f'<div class="etl-nb">{_STYLE}<p><b>{html.escape(self.headline())}</b></p>'
            f"{html_table(header, self.frame.rows())}"
            + (f"<p><small>{html.escape(footer)}</small></p>" if footer else "")
            + "</div>"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Bundle:
        return {"text/plain": self.text(), "text/html": self.html()}

    def __repr__(self) -> str:
        return self.text()


@dataclass
class Message:
    """One line of news from a cell (a connection declared, a load written, checks passed)."""

    text: str
    detail: list[str] = field(default_factory=list)
    css: str = ""

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Bundle:
        detail = "".join(f"<li>{html.escape(d)}</li>" for d in self.detail)
        css = f' class="{self.css}"' if self.css else ""
        return {
            "text/plain": "\n".join([self.text, *(f"  - {d}" for d in self.detail)]),
            "text/html": f'<div class="etl-nb">{_STYLE}<p{css}>{html.escape(self.text)}</p>'
            + (f"<ul>{detail}</ul>" if detail else "")
            + "</div>",
        }

    def __repr__(self) -> str:
        return self._repr_mimebundle_()["text/plain"]


def run_bundle(result: RunResult) -> Bundle:
    """A finished run: its status line and one row per step."""
    header = ["status", "step", "rows", "time"]
    rows = [
        [step.status, name, "" if step.rows is None else f"{step.rows:,}", seconds(step.seconds)]
        for name, step in result.steps.items()
    ]
    if any(step.why for step in result.steps.values()):  # the cache was used: say why per step
        header.append("why")
        for row, step in zip(rows, result.steps.values(), strict=True):
            row.append(step.why or "")
    headline = (
        f"run {result.run_id} of '{result.pipeline}': {result.status} in {seconds(result.seconds)}"
        f" ({len(result.steps)} steps)"
    )
    text = [headline, text_table(header, rows)]
    notes = [f"{name}: {note}" for name, step in result.steps.items() if (note := load_summary(step.detail))]
    text.extend(notes)
    classes = [s.status if s.status in ("failed", "warned") else "" for s in result.steps.values()]
    error = ""
    if result.error:
        text.append(result.error)
        error = f'<pre class="failed">{html.escape(result.error)}</pre>'
    return {
        "text/plain": "\n".join(text),
        "text/html": f'<div class="etl-nb">{_STYLE}<p><b>{html.escape(headline)}</b></p>'
        f"{html_table(header, rows, classes)}"
        + "".join(f"<p>{html.escape(n)}</p>" for n in notes)
        + f"{error}</div>",
    }


@dataclass
class RunsTable:
    """Recent runs from the run store, newest first."""

    runs: list[RunRecord]
    pipeline: str

    def _rows(self) -> list[list[str]]:
        rows = []
        for run in self.runs:
            error = (run.error or "").splitlines()[0] if run.error else ""
            rows.append(
                [
                    run.id,
                    run.status,
                    run.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                    seconds(run.seconds),
                    "" if run.rows is None else f"{run.rows:,}",
                    run.trigger,
                    error[:120],
                ]
            )
        return rows

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Bundle:
        header = ["run", "status", "started (UTC)", "time", "rows", "trigger", "error"]
        if not self.runs:
            text = f"No runs of '{self.pipeline}' yet: %etl run records one."
            return {"text/plain": text, "text/html": f"<p>{html.escape(text)}</p>"}
        rows = self._rows()
        headline = f"{len(rows)} recent run{'' if len(rows) == 1 else 's'} of '{self.pipeline}'"
        classes = [r.status if r.status == "failed" else "" for r in self.runs]
        return {
            "text/plain": headline + "\n" + text_table(header, rows),
            "text/html": f'<div class="etl-nb">{_STYLE}<p><b>{html.escape(headline)}</b></p>'
            f"{html_table(header, rows, classes)}</div>",
        }


@dataclass
class DagView:
    """The pipeline graph: Mermaid for JupyterLab, an indented list for everything else."""

    mermaid: str
    lines: list[tuple[str, list[str], str]]  # (label, upstream labels, mark)

    def text(self) -> str:
        """One line per step in run order, with its inputs and a [failed]/[stale] mark."""
        if not self.lines:
            return "The pipeline has no steps yet."
        width = max(len(label) for label, _, _ in self.lines)
        out = []
        for label, upstream, mark in self.lines:
            line = label.ljust(width)
            if upstream:
                line += "  <- " + ", ".join(upstream)
            if mark:
                line += f"  [{mark}]"
            out.append(line.rstrip())
        return "\n".join(out)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Bundle:
        return {"text/vnd.mermaid": self.mermaid, "text/plain": self.text()}

    def __repr__(self) -> str:
        return self.text()
