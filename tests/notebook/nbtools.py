"""Helpers for the notebook tests: run cells like a kernel, write notebooks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class CellResult:
    """What one cell did: its displays (mime bundles), stdout, and the exception if it failed."""

    outputs: list[dict[str, Any]] = field(default_factory=list)
    stdout: str = ""
    error: BaseException | None = None

    def text(self) -> str:
        """Every display's text/plain, joined."""
        return "\n".join(o.get("text/plain", "") for o in self.outputs)

    @property
    def message(self) -> str:
        """The one line a user sees for a failed cell (ANSI colours removed)."""
        assert self.error is not None, "the cell did not fail"
        render = getattr(self.error, "_render_traceback_", None)
        assert render is not None, f"a traceback would be shown for {self.error!r}"
        lines = render()
        assert len(lines) == 1
        return ANSI.sub("", lines[0])


class Notebook:
    """Runs cells in the shell the way a kernel does."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell

    def __call__(self, source: str) -> CellResult:
        from IPython.utils.capture import capture_output

        with capture_output() as captured:
            result = self.shell.run_cell(source, store_history=True)
        # Fold display updates (display_id) into the output they replace, as a frontend does.
        outputs: list[dict[str, Any]] = []
        ids: dict[str, int] = {}
        for output in captured.outputs:
            display_id = (output.transient or {}).get("display_id")
            if output.update and display_id in ids:
                outputs[ids[display_id]] = dict(output.data)
                continue
            if display_id:
                ids[display_id] = len(outputs)
            outputs.append(dict(output.data))
        return CellResult(
            outputs=outputs,
            stdout=captured.stdout,
            error=result.error_in_exec or result.error_before_exec,
        )

    def ok(self, source: str) -> CellResult:
        """Run a cell that must succeed."""
        result = self(source)
        assert result.error is None, f"cell failed: {result.error!r}\n{result.stdout}"
        return result

    @property
    def ns(self) -> dict[str, Any]:
        return self.shell.user_ns  # type: ignore[no-any-return]

    def pipeline(self) -> Any:
        import etl_nb

        return etl_nb.current()


def write_notebook(path: Path, cells: list[str | tuple[str, list[str]]]) -> Path:
    """A notebook of code cells; a ``(source, tags)`` pair tags its cell (``parameters``)."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    nb_cells = []
    for cell in cells:
        if isinstance(cell, tuple):
            source, tags = cell
            nb_cells.append(new_code_cell(source, metadata={"tags": tags}))
        elif cell.startswith("# md\n"):
            nb_cells.append(new_markdown_cell(cell.removeprefix("# md\n")))
        else:
            nb_cells.append(new_code_cell(cell))
    notebook = new_notebook(
        cells=nb_cells,
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    nbformat.write(notebook, path)
    return path
