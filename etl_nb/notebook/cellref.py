"""One way to name a notebook cell: ``cell N``, its position as a person sees it, 1-based.

N counts every cell of the notebook file (markdown included) and never the
execution count, so ``etl-nb run``, ``etl-nb export``, the reader and the
magics name one cell alike. Code passes the 0-based index into ``nb.cells``
(what ``Statement.cell`` and ``CodeCell.index`` hold); ``cell_label`` adds one.

A recorded run executes a copy of the notebook with cells papermill and
``etl-nb run`` add (the injected parameters, the closing run): ``position``
leaves them out. When the pipeline fails at ``%etl run``, the kernel starts
its message with the cell that declared the failing step (``at_cell``), and
``run_error`` names that cell instead of the ``%etl run`` cell.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["ADDED_TAGS", "at_cell", "cell_label", "position", "run_error"]

# Tags of cells a recorded run adds to the notebook: not the user's, never counted.
ADDED_TAGS = ("injected-parameters", "etl-nb-finish")
# Papermill writes notes about the error into the executed notebook after the fact; its indices predate them.
_ERROR_NOTES = "papermill-error-cell-tag"
_NAMED = re.compile(r"cell (\d+): ")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def cell_label(index: int) -> str:
    """``cell N`` for the 0-based index ``index`` into the notebook's cells."""
    return f"cell {index + 1}"


def at_cell(index: int | None, message: str) -> str:
    """``cell N: message``: a message about the cell at ``index`` (as is when the index is unknown)."""
    return message if index is None else f"{cell_label(index)}: {message}"


def position(nb: Any, index: int) -> int | None:
    """The 1-based position of ``nb.cells[index]`` leaving out cells the run added; None for one of those."""
    cells = list(nb.get("cells", []))
    if not 0 <= index < len(cells):
        return None
    if _added(cells[index]):
        return None
    return sum(1 for cell in cells[:index] if not _added(cell)) + 1


def run_error(executed: Any, cell_index: int, ename: str, evalue: str, traceback: list[str]) -> str:
    """A recorded run's error in one form: ``cell N failed: Kind: message``.

    ``executed`` is the notebook papermill wrote (with its added cells and
    error notes) and the rest is its error, ``cell_index`` counting the cells
    as they ran. An etl_nb mistake is named by its own class
    (``PipelineError``, not the ``EtlUsageError`` that carried it), and by the
    cell that declared the failing step when the kernel said which.
    """
    kind, message = ename, evalue
    if ename == "EtlUsageError" and traceback:  # its one rendered line starts with the EtlError's class
        kind, _, message = _ANSI.sub("", traceback[-1]).partition(": ")
    named = _NAMED.match(message)
    where: str
    if named is not None:
        where, message = f"cell {named.group(1)}", message[named.end() :]
    else:
        cells = [c for c in executed.get("cells", []) if _ERROR_NOTES not in _tags(c)]
        found = position({"cells": cells}, cell_index)
        if found is not None:
            where = f"cell {found}"
        elif 0 <= cell_index < len(cells) and "etl-nb-finish" in _tags(cells[cell_index]):
            where = "the pipeline run at the end of the notebook (added by etl-nb run)"
        else:
            where = "a cell"
    text = f"{kind}: {message}" if message else kind
    return _ANSI.sub("", f"{where} failed: {text}")


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _added(cell: Any) -> bool:
    return any(tag in ADDED_TAGS for tag in _tags(cell))
