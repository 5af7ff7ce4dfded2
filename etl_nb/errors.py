"""Errors that etl_nb raises for users.

Every error a user can cause is an ``EtlError`` whose message is a sentence
that names the problem and the fix. Anything else is a bug in etl_nb.

    EtlError
    ├── SpecError          a cell, option or body that does not parse or validate
    ├── ConnectorError     a source or target that cannot be read or written
    │   │                  (``transient`` errors are retried with backoff)
    │   └── MissingSecret  a ``${VAR}`` whose variable is not set
    ├── PipelineError      a pipeline that cannot run: unknown table, cycle, SQL error
    └── CheckFailed        a data check that found offending rows
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from etl_nb._masking import holds_secret, redact

# Longer messages (a 100 KB parameter value quoted in an error) are cut to this many characters.
MAX_MESSAGE_CHARS = 4000


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the choice closest to ``word``, or ``""`` when none is close.

    The one wording of the hint, for connections, tables, steps, options and parameters.
    """
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


def cut(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text``, or its first ``limit`` characters and a note of how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters cut)"


def scrub_chain(error: BaseException) -> BaseException:
    """``error`` and the exceptions it was raised from (``__cause__``, ``__context__``) masked.

    A driver's exception behind an ``EtlError`` may quote a resolved secret (a
    user name from ``${VAR}``); a traceback or a debugger would show it. Each
    linked exception's arguments are masked; one whose text still shows a
    secret (its ``__str__`` does not come from its arguments) is cut off the chain.
    """
    _masked(error)
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for attribute in ("__cause__", "__context__"):
            linked = getattr(current, attribute)
            if linked is not None and not _masked(linked):
                setattr(current, attribute, None)
                current.__suppress_context__ = True
        current = current.__cause__ or current.__context__
    return error


def _masked(error: BaseException) -> bool:
    """Mask ``error``'s arguments in place; whether its text is now free of secrets."""
    try:
        if holds_secret(repr(error.args)):
            error.args = tuple(redact(a) if isinstance(a, str) else redact(repr(a)) for a in error.args)
        return not (holds_secret(str(error)) or holds_secret(repr(error)))
    except Exception:  # a broken __str__ cannot be checked: do not keep it
        return False


class EtlError(Exception):
    """Base of every error etl_nb raises for a user mistake or a failing source."""

    def __init__(self, message: str, *, step: str | None = None) -> None:
        self.step = step
        super().__init__(cut(redact(message)))

    @property
    def message(self) -> str:
        """The sentence shown to the user."""
        return str(self.args[0]) if self.args else ""


class SpecError(EtlError):
    """A cell, an option or a body that does not parse or validate."""

    def __init__(self, message: str, *, step: str | None = None, cell: int | None = None) -> None:
        self.cell = cell
        super().__init__(message, step=step)


class ConnectorError(EtlError):
    """A source or target that cannot be read or written.

    ``transient`` marks errors worth retrying (a dropped connection, a 503);
    permanent ones (a wrong password, a missing file) fail at once.
    """

    def __init__(self, message: str, *, step: str | None = None, transient: bool = False) -> None:
        self.transient = transient
        super().__init__(message, step=step)


class MissingSecret(ConnectorError):
    """A ``${VAR}`` reference whose variable is not set (``variable`` names it)."""

    def __init__(self, variable: str, *, connection: str | None = None, step: str | None = None) -> None:
        self.variable = variable
        where = f"Connection '{connection}' uses" if connection else "This uses"
        super().__init__(
            f"{where} ${{{variable}}} but it is not set: "
            "export it or add it to the .env file beside the notebook.",
            step=step,
        )


class PipelineError(EtlError):
    """A pipeline that cannot run as declared: unknown table, cycle, SQL error."""


class MissingParameter(PipelineError):
    """A step uses ``{{ name }}`` but no parameter of that name has a value.

    The one wording, with the closest defined name and the fix: ``fix`` says
    where the value comes from (the API's ``run(params=...)`` by default, the
    kernel's namespace in a notebook).
    """

    def __init__(
        self, name: str, *, step: str, known: Iterable[str] = (), fix: str | None = None, where: str = ""
    ) -> None:
        self.name = name
        fix = fix or f"Define '{name}' in the parameters cell or pass it: run(params={{'{name}': ...}})."
        super().__init__(
            f"Step '{step}' uses the parameter {{{{ {name} }}}}{where} but it has no value."
            f"{did_you_mean(name, known)} {fix}",
            step=step,
        )


class CheckFailed(EtlError):
    """A data check found rows that break it.

    ``failures`` holds one entry per broken rule with its count and sample rows.
    """

    def __init__(self, message: str, *, step: str, failures: list[dict[str, Any]]) -> None:
        self.failures = failures
        super().__init__(message, step=step)
