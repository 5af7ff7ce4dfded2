"""Driver errors as ``ConnectorError``: one sentence naming the connection or step and what to check.

Every database call of the SQL connectors runs inside ``db_errors``, which
sorts whatever the driver raised (SQLAlchemy, psycopg, PyMySQL, ADBC, DuckDB)
with ``classify`` and raises the matching sentence, the way httpx maps its
transport errors in one place. Errors etl_nb raised itself (``EtlError``)
pass through unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import sqlalchemy as sa

from etl_nb.errors import ConnectorError, EtlError

_TRANSIENT_SQLSTATES = {"57P01", "57P02", "57P03", "40001", "40P01", "53300"}
_TRANSIENT_MYSQL = {2006, 2013, 2055, 1205, 1213, 1053}
_TRANSIENT_WORDS = (
    "server closed the connection",
    "connection reset",
    "connection was closed",
    "terminating connection",
    "lost connection",
    "server has gone away",
    "no connection to the server",
    "broken pipe",
    "connection already closed",
    "ssl syscall error",
)
_UNREACHABLE_WORDS = (
    "connection refused",
    "could not translate host name",
    "name or service not known",
    "timeout expired",
    "timed out",
    "can't connect to",
    "unknown mysql server host",
    "no route to host",
    "network is unreachable",
    "could not connect to server",
    "is the server running",
    "unable to open database file",
)
_AUTH_WORDS = ("password authentication failed", "access denied for user", "no password supplied")
_NO_DATABASE_WORDS = ("does not exist", "unknown database")


@dataclass(frozen=True)
class DbProblem:
    """What went wrong with a database, sorted so that a message can name the fix."""

    kind: str  # unreachable, auth, no_database, no_table, dependents, sql, transient, other
    detail: str
    transient: bool = False


@dataclass(frozen=True)
class _Codes:
    """The parts of a driver's exception that say what happened."""

    text: str
    low: str
    sqlstate: str
    code: int | None


def classify(exc: BaseException) -> DbProblem:
    """Sort a driver's exception (SQLAlchemy, psycopg, PyMySQL, ADBC, DuckDB) by its cause."""
    orig = getattr(exc, "orig", None) or exc
    args = getattr(orig, "args", None)
    codes = _Codes(
        text=_first_line(str(orig)),
        low=str(orig).lower(),
        sqlstate=_sqlstate(orig) or "",
        code=args[0] if args and isinstance(args[0], int) else None,
    )
    if getattr(exc, "connection_invalidated", False) or codes.sqlstate.startswith("08"):
        if any(w in codes.low for w in _UNREACHABLE_WORDS) and "terminating" not in codes.low:
            return DbProblem("unreachable", codes.text)
        return DbProblem("transient", codes.text, transient=True)
    for kind, test in _RULES:
        if test(codes):
            return DbProblem(kind, codes.text, transient=kind == "transient")
    if isinstance(orig, sa.exc.DBAPIError | duckdb.Error) or "sql" in type(orig).__name__.lower():
        return DbProblem("sql", codes.text)
    return DbProblem("other", f"{type(orig).__name__}: {codes.text}")


def _is_auth(c: _Codes) -> bool:
    unknown_role = 'role "' in c.low and "does not exist" in c.low
    return c.sqlstate in ("28P01", "28000") or c.code == 1045 or unknown_role or _has(c, _AUTH_WORDS)


def _is_no_database(c: _Codes) -> bool:
    return c.sqlstate == "3D000" or c.code == 1049 or ("database" in c.low and _has(c, _NO_DATABASE_WORDS))


def _is_no_table(c: _Codes) -> bool:
    return (
        c.sqlstate in ("42P01", "3F000")
        or c.code == 1146
        or "no such table" in c.low
        or ("table with name" in c.low and "does not exist" in c.low)
    )


def _has(c: _Codes, words: tuple[str, ...]) -> bool:
    return any(w in c.low for w in words)


# Tried in order: the first that holds names the problem.
_RULES: list[tuple[str, Callable[[_Codes], bool]]] = [
    ("transient", lambda c: c.sqlstate in _TRANSIENT_SQLSTATES or c.code in _TRANSIENT_MYSQL),
    ("auth", _is_auth),
    ("no_database", _is_no_database),
    ("unreachable", lambda c: _has(c, _UNREACHABLE_WORDS) or c.code in (2002, 2003, 2005)),
    ("transient", lambda c: _has(c, _TRANSIENT_WORDS)),
    ("no_table", _is_no_table),
    # A view or foreign key depends on the table.
    ("dependents", lambda c: c.sqlstate == "2BP01" or c.code == 3730),
    (
        "sql",
        lambda c: (
            c.sqlstate[:2] in ("42", "22", "23", "0A", "2B", "XX")
            or (c.code is not None and 1000 <= c.code < 2000)
        ),
    ),
]


def _sqlstate(exc: BaseException) -> str | None:
    for attr in ("sqlstate", "pgcode"):
        value = getattr(exc, attr, None)
        if isinstance(value, str) and value:
            return value
    diag = getattr(exc, "diag", None)
    value = getattr(diag, "sqlstate", None)
    if isinstance(value, str) and value:
        return value
    match = re.search(r"SQLSTATE: ([0-9A-Z]{5})", str(exc))
    return match.group(1) if match else None


def _first_line(text: str) -> str:
    for raw in text.strip().splitlines():
        # ADBC prefixes a status ("IO:", "INVALID_ARGUMENT: [libpq]"): keep the database's words.
        line = re.sub(r"^[A-Z_]+: (\[libpq\] )?", "", raw.strip())
        line = re.sub(
            r"^(Failed to (prepare|execute) query|Failed to execute COPY statement): (\w+ )?", "", line
        )
        line = re.sub(r"^(PGRES_FATAL_ERROR )?ERROR:\s+", "", line)
        line = re.sub(r"^\(\w+(\.\w+)*\) ", "", line)  # SQLAlchemy's "(psycopg.errors.X) "
        if line:
            return line.rstrip(".")
    return text.strip()


@dataclass(frozen=True)
class Doing:
    """What was being done when a database call failed: the words of the message."""

    connection: str  # the connection as messages show it: name and URL without password
    doing: str  # "the extract", "the load", "the commit into 'shop.orders'"
    step: str | None = None
    table: str | None = None


def db_error(exc: BaseException, where: Doing) -> ConnectorError:
    """The ``ConnectorError`` that says what ``exc`` means for ``where``."""
    problem = classify(exc)
    conn, doing, step = where.connection, where.doing, where.step
    subject = f"{doing.capitalize()} for step '{step}'" if step else doing.capitalize()
    of_step = f" (step {step!r})" if step else ""
    messages = {
        "unreachable": f"Cannot reach the database of connection {conn}: {problem.detail}. "
        "Check the host and port, and that the server is running.",
        "auth": f"The database of connection {conn} refused the login: {problem.detail}. "
        "Check the user and the password (or the ${VAR} that holds it).",
        "no_database": f"The database of connection {conn} does not exist: {problem.detail}. "
        "Create it, or fix the database name in the URL.",
        "no_table": f"{subject} on connection {conn} failed: {problem.detail}. "
        f"Check the table name{f' {where.table!r}' if where.table else ''} and its schema.",
        "dependents": f"{subject} on connection {conn} failed: {problem.detail}. --mode replace "
        "drops and recreates the table, which its dependent views and foreign keys forbid: use "
        "--mode merge or append, or drop the dependents first.",
        "sql": f"SQL error in {doing}{of_step} on connection {conn}: "
        f"{problem.detail}. Check the SQL; it runs on the source in its own dialect.",
        "transient": f"The connection {conn} was lost during {doing}{of_step}: {problem.detail}. "
        "It will be retried.",
        "other": f"{subject} on connection {conn} failed: {problem.detail}.",
    }
    return ConnectorError(messages[problem.kind], step=step, transient=problem.transient)


@contextmanager
def db_errors(
    where: Doing, *, on_error: Callable[[], None] | None = None, final: bool = False
) -> Iterator[None]:
    """Raise what a driver raises inside the block as the ``ConnectorError`` that explains it.

    ``on_error`` runs first, whatever was raised (close a connection, drop a
    staging table). ``final`` marks a commit: it is never retried as is (its
    staging table is gone), and the message says that the target is unchanged.
    """
    try:
        yield
    except BaseException as exc:
        if on_error is not None:
            on_error()
        if isinstance(exc, EtlError) or not isinstance(exc, Exception):
            raise
        error = db_error(exc, where)
        if final:
            error = ConnectorError(error.message + " The target was left as it was.", step=where.step)
        raise error from None
