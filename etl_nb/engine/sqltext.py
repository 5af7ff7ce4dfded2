"""SQL text: DuckDB identifier quoting, statement bodies and SQL error positions, one copy each.

Every module that writes a DuckDB identifier into SQL (the runner, checks,
connectors staging into DuckDB) quotes it here, and every place that reads
the ``LINE n: ...`` excerpt of a DuckDB error (the session mapping it back to
the step's own lines, the magics turning it into "at line n, column m")
parses it here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb


def quote(name: str) -> str:
    """``name`` as a quoted DuckDB SQL identifier (``"`` doubled inside)."""
    return '"' + name.replace('"', '""') + '"'


def sql_body(sql: str) -> str:
    """``sql`` without the semicolons (and blank space) it ends with, ready to nest in a query.

    Comments stay (the caller puts the text on lines of its own), and so do the
    lines before, so line numbers in errors still match the user's text.
    """
    data = sql.encode()
    try:
        tokens = duckdb.tokenize(sql)  # positions are byte offsets
    except Exception:  # not tokenisable: DuckDB reports the real error when it runs
        return sql.rstrip().rstrip(";").rstrip()
    for position, kind in reversed(tokens):
        if kind == duckdb.token_type.comment:
            continue
        if kind == duckdb.token_type.operator and data[position : position + 1] == b";":
            data = data[:position] + data[position + 1 :]
            continue
        break
    return data.decode().rstrip()


# DuckDB ends a positioned error with "LINE n: <excerpt>" and a line of carets under it.
_SQL_CONTEXT = re.compile(r"\n*LINE (\d+): (.*)\n( *)(\^+)\s*$")


@dataclass(frozen=True)
class ErrorPosition:
    """Where a DuckDB error points: the ``LINE n`` excerpt at the end of its message."""

    head: str  # the message before the excerpt
    line: int  # DuckDB's line number, in the SQL it ran
    excerpt: str  # the text shown after ``LINE n: ``
    caret: int  # the caret's offset into ``excerpt``
    marks: str  # the carets themselves

    def moved(self, line: int) -> str:
        """The message with the excerpt labelled as line ``line`` (of the user's own SQL)."""
        label = f"LINE {line}: "
        return f"{self.head}\n\n{label}{self.excerpt}\n{' ' * (len(label) + self.caret)}{self.marks}"


def error_position(message: str) -> ErrorPosition | None:
    """The position a DuckDB error ``message`` points at, or None when it has none."""
    match = _SQL_CONTEXT.search(message)
    if match is None:
        return None
    line = match.group(1)
    return ErrorPosition(
        head=message[: match.start()],
        line=int(line),
        excerpt=match.group(2),
        caret=len(match.group(3)) - len(f"LINE {line}: "),
        marks=match.group(4),
    )


def in_user_lines(exc: duckdb.Error, first: int, select: str) -> duckdb.Error:
    """``exc`` with its ``LINE n`` counted in ``select`` (which starts on line ``first`` of the
    SQL DuckDB ran), or without the excerpt when it points at SQL the user did not write."""
    position = error_position(str(exc))
    if position is None:
        return exc
    line = position.line - first + 1
    if not 1 <= line <= select.count("\n") + 1:
        return type(exc)(position.head)
    return type(exc)(position.moved(line))


@dataclass(frozen=True)
class CsvValueError:
    """A CSV value that DuckDB's reader could not convert to the column's type.

    ``line`` is the file's line (the header is line 1); ``value`` and ``type``
    are absent when DuckDB's message does not give them.
    """

    file: str
    line: int
    column: str
    value: str | None
    type: str | None


_CSV_LINE = re.compile(r"CSV Error on Line: (\d+)")
_CSV_COLUMN = re.compile(
    r'Error when converting column "(?P<column>(?:[^"]|"")+)"\.(?: Could not convert string '
    r'"(?P<value>.*?)" to \'(?P<type>[^\']+)\')?'
)
_CSV_FILE = re.compile(r"^\s*file = (.+?)\s*$", re.MULTILINE)


def csv_value_error(message: str) -> CsvValueError | None:
    """The file, line and column of a CSV conversion error in a DuckDB message, or None."""
    line, column, file = _CSV_LINE.search(message), _CSV_COLUMN.search(message), _CSV_FILE.search(message)
    if line is None or column is None or file is None:
        return None
    return CsvValueError(
        file=file.group(1),
        line=int(line.group(1)),
        column=column.group("column"),
        value=column.group("value"),
        type=column.group("type"),
    )
