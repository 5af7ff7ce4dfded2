"""Parameters checked before a kernel starts: the one check for runs, schedules, backfills and the API.

papermill only warns about a name the parameters cell does not define and
injects text wherever it cannot guess a type (papermill #818), so a typo runs
the notebook with its default. Here every given name must be defined by the
parameters cell (else the closest name is suggested), every value must take
its default's type (int, float, bool, a date string), and every
``{{ name }}`` a step uses must have a value somewhere. A mistake raises a
``SpecError`` (one sentence, exit 2 in the CLI) and no run is recorded.
"""

from __future__ import annotations

import ast
import datetime as dt
import functools
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl_nb.errors import EtlError, SpecError, did_you_mean

if TYPE_CHECKING:
    from etl_nb.notebook.reader import NotebookPipeline

SCHEDULED_FOR = "scheduled_for"  # the slot of a scheduled or backfilled run, when the notebook defines it


def check_parameters(notebook: str | Path, given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` (text from ``-p``, or JSON values from a schedule or the API) typed for ``notebook``.

    Returns the values to inject, each converted to its default's type.
    Raises ``SpecError`` naming the parameter and the fix when a name is not
    defined, a value cannot take the default's type, or a step's
    ``{{ name }}`` has no value anywhere.
    """
    check_names(given)
    declared = declared_parameters(notebook)
    typed = {name: _checked(declared, name, value) for name, value in given.items()}
    _check_used_parameters(declared, typed)
    return typed


def check_names(given: Mapping[str, Any]) -> None:
    """Refuse a parameter name that is not a Python identifier (before the notebook is even read)."""
    for name in given:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(name)):
            raise SpecError(f"Parameter name '{name}' is not a Python identifier.")


def defines(notebook: str | Path, name: str) -> bool:
    """Whether ``notebook``'s parameters cell defines ``name`` (``scheduled_for``, say)."""
    return name in declared_parameters(notebook).parameter_names


def declared_parameters(notebook: str | Path) -> NotebookPipeline:
    """What ``notebook`` declares (read once per version of the file); ``SpecError`` if unreadable."""
    path = Path(notebook)
    if not path.is_file():
        raise SpecError(f"Notebook '{notebook}' does not exist. Check the path.")
    stat = path.stat()
    return _read(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _read(path: str, _mtime_ns: int, _size: int) -> NotebookPipeline:
    # Keyed by modification time and size: an edited notebook is read again.
    try:
        # Imported here for start-up speed: the reader brings DuckDB, which `etl-nb runs` does not need.
        from etl_nb.notebook.reader import read_notebook

        return read_notebook(path)
    except EtlError as exc:
        raise SpecError(str(exc)) from None


def _checked(declared: NotebookPipeline, name: str, value: Any) -> Any:
    where = f"notebook '{declared.path.name if declared.path else declared.name}'"
    if declared.parameters_cell is None:
        raise SpecError(
            f"Unknown parameter '{name}': {where} has no cell tagged 'parameters'. "
            "Tag the cell that assigns its defaults 'parameters' (View > Cell Toolbar > Tags)."
        )
    if name not in declared.parameter_names:
        known = ", ".join(declared.parameter_names) or "none"
        raise SpecError(
            f"Unknown parameter '{name}' for {where}.{did_you_mean(name, declared.parameter_names)} "
            f"Its parameters cell defines: {known}."
        )
    if name not in declared.parameters:  # assigned an expression: nothing to type it by
        return papermill_typed(value) if isinstance(value, str) else value
    return typed_like(declared.parameters[name], value, name)


def typed_like(default: Any, value: Any, name: str) -> Any:
    """``value`` converted to the type of ``default``; ``SpecError`` when it cannot be."""
    if default is None:
        return papermill_typed(value) if isinstance(value, str) else value
    converters = [*_CONVERTERS, (str, _to_text_like(default) if isinstance(default, str) else str)]
    for kind, convert in converters:
        if isinstance(default, kind):
            try:
                return convert(value)
            except (TypeError, ValueError, OverflowError):
                shown = str(value) if len(str(value)) <= 40 else str(value)[:40] + "..."
                raise SpecError(
                    f"Parameter '{name}' takes {_describe(default)} (its default is {default!r}); "
                    f"'{shown}' is not one. Pass a value like {default!r}."
                ) from None
    return value


def papermill_typed(raw: str) -> Any:
    """Text typed as papermill types ``-p`` values: int, float, bool, None, else the text itself."""
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(text)


def _to_int(value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(value)
    text = str(value).strip()
    if len(text) > 30:  # a 100-digit number is a typo, not a row count
        raise ValueError(text)
    return int(float(text)) if isinstance(value, float) else int(text)


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(value)
    number = float(str(value).strip())
    if not math.isfinite(number):
        raise ValueError(value)
    return number


def _to_text_like(default: str) -> Any:
    def convert(value: Any) -> str:
        text = value.isoformat() if isinstance(value, dt.date) else str(value)
        if _is_date(default) and not (_is_date(text) or _is_datetime(text)):
            raise ValueError(text)
        if _is_datetime(default) and not (_is_datetime(text) or _is_date(text)):
            raise ValueError(text)
        return text

    return convert


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", text))


def _is_datetime(text: str) -> bool:
    if not re.match(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", text):
        return False
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


_CONVERTERS: list[tuple[type | tuple[type, ...], Any]] = [
    (bool, _to_bool),  # before int: bool is an int
    (int, _to_int),
    (float, _to_float),
]


def _describe(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "a whole number"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, str) and _is_date(default):
        return "a date (YYYY-MM-DD)"
    if isinstance(default, str) and _is_datetime(default):
        return "a date and time (ISO 8601)"
    return f"a {type(default).__name__}"


def _check_used_parameters(declared: NotebookPipeline, given: Mapping[str, Any]) -> None:
    """Refuse a step's ``{{ name }}`` that neither the notebook nor ``given`` gives a value."""
    known = set(declared.parameter_names) | set(given)
    used = [(step, name) for step in declared.spec.steps for name in getattr(step, "parameters", [])]
    if any(name not in known for _, name in used):
        known |= _assigned_names(declared)  # read only when needed: it parses every cell
    for step, name in used:
        if name not in known:
            step_name = getattr(step, "name", None) or getattr(step, "step", "?")
            raise SpecError(
                f"Step '{step_name}' uses the parameter {{{{ {name} }}}} but the notebook never "
                f"defines it.{did_you_mean(name, sorted(known))} Add '{name} = ...' to the "
                f"parameters cell, or pass -p {name} VALUE."
            )


def _assigned_names(declared: NotebookPipeline) -> set[str]:
    """Every name some code cell of the notebook assigns (a parameter may come from any cell)."""
    import nbformat

    if declared.path is None:
        return set()
    names: set[str] = set()
    nb = nbformat.read(declared.path, as_version=4)  # type: ignore[no-untyped-call]
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith("%"))
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        names |= {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments) for a in n.args}
    return names
