"""Data checks: each rule counts the rows that break it and keeps a few as samples."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import duckdb

from etl_nb.engine.dag import bindable_sql
from etl_nb.engine.sqltext import error_position, quote
from etl_nb.errors import CheckFailed, PipelineError
from etl_nb.spec import CheckRule, CheckStep

SAMPLE_ROWS = 5


@dataclass(frozen=True)
class CheckResult:
    """What one rule found: ``count`` offending rows out of ``total``."""

    rule: str
    count: int
    total: int
    message: str
    sample: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict for the run store."""
        return {"rule": self.rule, "count": self.count, "total": self.total, "sample": self.sample}


def run_checks(con: duckdb.DuckDBPyConnection, table: str, check: CheckStep) -> list[CheckResult]:
    """Run every rule of ``check`` on ``table``; return the rules that found offending rows."""
    total = int(con.execute(f"SELECT count(*) FROM {quote(table)}").fetchall()[0][0])
    columns = set(con.sql(f"SELECT * FROM {quote(table)}").columns)
    failures: list[CheckResult] = []
    for rule in check.rules:
        missing = [c for c in rule.columns if c not in columns]
        if missing:
            raise PipelineError(
                f"Check {rule.describe()} on '{check.step}' names column '{missing[0]}', which "
                f"'{check.step}' does not have. Columns: {', '.join(sorted(columns))}.",
                step=check.step,
            )
        failures.extend(_run_rule(con, table, check.step, rule, total))
    return failures


def raise_for_failures(check: CheckStep, failures: list[CheckResult]) -> None:
    """Raise ``CheckFailed`` listing every failed rule with its samples."""
    lines = [f"Check on '{check.step}' failed:"]
    for failure in failures:
        lines.append(f"  - {failure.rule}: {failure.message}")
        lines.extend(f"      {row}" for row in failure.sample)
    lines.append(
        f"Fix the data or the step, or use '%%etl check {check.step} --warn' to report without failing."
    )
    raise CheckFailed("\n".join(lines), step=check.step, failures=[f.to_dict() for f in failures])


def _run_rule(
    con: duckdb.DuckDBPyConnection, table: str, step: str, rule: CheckRule, total: int
) -> list[CheckResult]:
    source = quote(table)
    if rule.kind == "row_count":
        too_few = rule.min is not None and total < rule.min
        too_many = rule.max is not None and total > rule.max
        if too_few or too_many:
            bound = f"at least {rule.min}" if too_few else f"at most {rule.max}"
            return [CheckResult(rule.describe(), total, total, f"{total} rows, expected {bound}", [])]
        return []
    if rule.kind == "not_null":
        return [
            r
            for column in rule.columns
            for r in _offending(
                con,
                source,
                f"{quote(column)} IS NULL",
                [],
                f"not_null({column})",
                total,
                f"rows have NULL {column}",
            )
        ]
    if rule.kind == "unique":
        # A list of columns is unique as a combination (a compound key); rows with
        # a NULL in the key are not duplicates, as in a SQL UNIQUE constraint.
        columns = ", ".join(quote(c) for c in rule.columns)
        key = f"({columns})" if len(rule.columns) > 1 else columns
        condition = (
            " AND ".join(f"{quote(c)} IS NOT NULL" for c in rule.columns)
            + f" AND {key} IN (SELECT {columns} FROM {source} GROUP BY ALL HAVING count(*) > 1)"
        )
        shown = rule.columns[0] if len(rule.columns) == 1 else f"({', '.join(rule.columns)})"
        return _offending(
            con,
            source,
            condition,
            [],
            rule.describe(),
            total,
            f"rows share their {shown} with another row",
        )
    if rule.kind == "accepted_values":
        column = rule.columns[0]
        condition = f"{quote(column)} IS NOT NULL AND NOT list_contains($values, {quote(column)})"
        return _offending(
            con,
            source,
            condition,
            {"values": rule.values},
            rule.describe(),
            total,
            f"rows have a {column} outside {rule.values}",
        )
    expression = bindable_sql(rule.expression or "true")
    return _offending(
        con,
        source,
        f"NOT coalesce(({expression}), false)",
        [],
        rule.describe(),
        total,
        f"rows break '{rule.expression}'",
    )


def _offending(
    con: duckdb.DuckDBPyConnection,
    source: str,
    condition: str,
    params: list[Any] | dict[str, Any],
    label: str,
    total: int,
    what: str,
) -> list[CheckResult]:
    try:
        count = int(con.execute(f"SELECT count(*) FROM {source} WHERE {condition}", params).fetchall()[0][0])
        if count == 0:
            return []
        cursor = con.execute(f"SELECT * FROM {source} WHERE {condition} LIMIT {SAMPLE_ROWS}", params)
        names = [d[0] for d in cursor.description or []]
        sample = [{n: _plain(v) for n, v in zip(names, row, strict=True)} for row in cursor.fetchall()]
    except duckdb.Error as exc:
        # DuckDB's excerpt quotes the wrapping SELECT, which the user did not write: keep its words.
        position = error_position(str(exc))
        words = " ".join((position.head if position else str(exc)).split())
        raise PipelineError(f"Check {label} cannot run: {words}") from None
    return [CheckResult(label, count, total, f"{count} of {total} {what}", sample)]


def _plain(value: Any) -> Any:
    """A sample value as JSON can hold it."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # NaN and infinities are not JSON (PostgreSQL's json type refuses them)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)
