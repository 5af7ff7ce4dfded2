"""One reading of a notebook's code cells, shared by the magics, the reader and the export.

What runs in a kernel is what the panel and ``etl-nb export`` see because all
three read cells here:

- ``cell_source`` and ``code_cells``: a notebook's own code cells (not
  papermill's injected parameters), each read once as IPython reads it: its
  Python, with magics turned into calls, and its ``%etl`` lines and
  ``%%etl`` cell as ``(line, body)`` pairs (``etl_magics``);
- ``assignments``, ``literal_assignments`` and ``read_parameters``: top-level
  ``name = literal`` lines (tuple targets and annotated assignments too) and
  the cell tagged ``parameters`` (papermill's convention);
- ``expand``: the ``{expr}`` / ``$name`` expansion IPython applies to a line
  magic (``{{``, ``}}`` and ``$$`` are escapes), with ``${SECRET}`` references
  left as written. Each caller brings its own lookup: the magics evaluate in
  the kernel's namespace, the reader knows only literals, the export writes
  placeholders that become code.

Nothing here runs notebook code.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from etl_nb._secrets import SECRET_REF

__all__ = [
    "NOT_LITERAL",
    "CodeCell",
    "NotExpandable",
    "Parameters",
    "assignments",
    "cell_source",
    "code_cells",
    "etl_magics",
    "expand",
    "literal_assignments",
    "read_parameters",
]

Magic = tuple[str, str | None]
_MAGIC_CALLS = {"run_line_magic", "run_cell_magic"}
# IPython's escapes and fields in a line magic: {{ }} $$, {expression}, $name.
_EXPANSION = re.compile(r"\{\{|\}\}|\$\$|\{([^{}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_ESCAPES = {"{{": "{", "}}": "}", "$$": "$"}


# --------------------------------------------------------------------------------------
# Cells
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodeCell:
    """One of the notebook's own code cells, read once.

    ``index`` is the cell's position in ``nb.cells`` (0-based, markdown cells
    included). ``code`` is the cell as IPython runs it, or None when it is not
    Python once its magics are read; ``plain`` says the source is plain Python
    (no magic or shell escape), so ``code`` is its tree as written.
    """

    index: int
    source: str
    tags: tuple[str, ...]
    code: ast.Module | None
    magics: tuple[Magic, ...] = ()
    plain: bool = False


def cell_source(cell: Any) -> str:
    """A notebook cell's source as one string (nbformat stores a string or a list of lines)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def code_cells(nb: Any) -> Iterator[CodeCell]:
    """The code cells of notebook ``nb`` (an ``nbformat`` node or dict), each parsed once.

    Cells papermill injected (tagged ``injected-parameters``) are its output,
    not the notebook's own declaration, and are left out.
    """
    transform = _transformer()
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        tags = tuple(cell.get("metadata", {}).get("tags", []))
        if "injected-parameters" in tags:
            continue
        source = cell_source(cell)
        python = transform(source)
        try:
            code = ast.parse(python)
        except SyntaxError:
            yield CodeCell(index, source, tags, None)
            continue
        plain = python in (source, source + "\n")
        yield CodeCell(index, source, tags, code, tuple(_magics_in(code)), plain)


def etl_magics(source: str) -> tuple[ast.Module, list[Magic]]:
    """The ``%etl`` lines and ``%%etl`` cell of one code cell's source, as ``(line, body)`` pairs.

    Uses IPython's own input transformer, so continuation lines, indentation
    and strings that merely contain ``%etl`` are read as IPython reads them.
    ``body`` is None for a line magic. Raises ``SyntaxError`` if the cell is
    not Python once its magics are transformed.
    """
    code = ast.parse(_transformer()(source))
    return code, _magics_in(code)


def _transformer() -> Callable[[str], str]:
    # IPython is imported on first use: the reader also runs in the CLI and the server, outside a kernel.
    from IPython.core.inputtransformer2 import TransformerManager

    make: Callable[[], Any] = TransformerManager
    transform: Callable[[str], str] = make().transform_cell
    return transform


def _magics_in(code: ast.Module) -> list[Magic]:
    found: list[tuple[int, int, str, str | None]] = []
    for node in ast.walk(code):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _MAGIC_CALLS
            and node.args
            and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args)
        ):
            continue
        args = [str(a.value) for a in node.args if isinstance(a, ast.Constant)]
        if args[0] != "etl":
            continue
        line = args[1] if len(args) > 1 else ""
        body = args[2] if node.func.attr == "run_cell_magic" and len(args) > 2 else None
        found.append((node.lineno, node.col_offset, line, body))
    found.sort()
    return [(line, body) for _, _, line, body in found]


# --------------------------------------------------------------------------------------
# Literal assignments and the parameters cell
# --------------------------------------------------------------------------------------

NOT_LITERAL: Any = object()  # the value of an assigned name whose value is not a literal


def assignments(tree: ast.Module) -> list[tuple[str, Any]]:
    """Top-level ``name = value`` pairs in order; values that are not literals are ``NOT_LITERAL``.

    Reads ``a = b = 1``, ``a, b = 1, 2`` (and lists), and annotated
    assignments (``a: int = 1``; a bare ``a: int`` names ``a`` without a value).
    """
    found: list[tuple[str, Any]] = []
    for node in tree.body:
        pairs: list[tuple[ast.expr, ast.expr | None]] = []
        if isinstance(node, ast.Assign):
            pairs = [(target, node.value) for target in node.targets]
        elif isinstance(node, ast.AnnAssign):
            pairs = [(node.target, node.value)]
        for target, value in pairs:
            found.extend(_targets(target, value))
    return found


def _targets(target: ast.expr, value: ast.expr | None) -> list[tuple[str, Any]]:
    if isinstance(target, ast.Name):
        return [(target.id, _literal(value))]
    if not isinstance(target, ast.Tuple | ast.List):
        return []
    values: list[ast.expr | None] = [None] * len(target.elts)
    if isinstance(value, ast.Tuple | ast.List) and len(value.elts) == len(target.elts):
        values = list(value.elts)
    return [(t.id, _literal(v)) for t, v in zip(target.elts, values, strict=True) if isinstance(t, ast.Name)]


def _literal(node: ast.expr | None) -> Any:
    if node is None:
        return NOT_LITERAL
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return NOT_LITERAL


def literal_assignments(tree: ast.Module) -> dict[str, Any]:
    """The names ``tree`` assigns a literal at its top level, with their values (the last one wins)."""
    return {name: value for name, value in assignments(tree) if value is not NOT_LITERAL}


@dataclass
class Parameters:
    """The cell tagged ``parameters``: its index, every name it assigns, the literal defaults."""

    cell: int | None = None
    names: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None  # why the cell could not be read


def read_parameters(cells: list[CodeCell]) -> Parameters:
    """The first cell tagged ``parameters`` (papermill's convention), read as plain Python."""
    cell = next((c for c in cells if "parameters" in c.tags), None)
    if cell is None:
        return Parameters()
    found = Parameters(cell=cell.index)
    tree = cell.code if cell.plain else None
    if tree is None:  # IPython syntax in it (or none at all): ask Python what is wrong
        try:
            tree = ast.parse(cell.source)
        except SyntaxError as exc:
            found.problem = f"the parameters cell is not plain Python (line {exc.lineno}: {exc.msg})."
            return found
    for name, value in assignments(tree):
        if name not in found.names:
            found.names.append(name)
        if value is not NOT_LITERAL:
            found.values[name] = value
    return found


# --------------------------------------------------------------------------------------
# {expr} and $name in a %etl line
# --------------------------------------------------------------------------------------


class NotExpandable(Exception):
    """A ``{expr}`` or ``$name`` field that the lookup has no value for; ``text`` is the field as written."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def expand(line: str, lookup: Callable[[str], str | None]) -> str:
    """``line`` with each ``{expr}`` and ``$name`` replaced by ``lookup(expr or name)``, as one argument.

    ``{{``, ``}}`` and ``$$`` stand for ``{``, ``}`` and ``$``, as in IPython.
    Unlike IPython, a value is quoted for the shlex reading of the line
    (``parse_cell``): whatever it holds (spaces, quotes, ``--mode replace``) it
    stays part of the one word it was written in, so a parameter is a value and
    never an option. ``${SECRET}`` references stay as written: they are
    resolved only when a connection opens. Raises ``NotExpandable`` at the
    first field whose lookup returns None.
    """
    if "$" not in line and "{" not in line:
        return line
    quoting = _Quoting()
    parts: list[str] = []
    start = 0
    for secret in SECRET_REF.finditer(line):
        parts += [_expand_fields(line[start : secret.start()], lookup, quoting), secret.group(0)]
        quoting.feed(secret.group(0))
        start = secret.end()
    parts.append(_expand_fields(line[start:], lookup, quoting))
    return "".join(parts)


def _expand_fields(text: str, lookup: Callable[[str], str | None], quoting: _Quoting) -> str:
    parts: list[str] = []
    start = 0
    for match in _EXPANSION.finditer(text):
        literal = text[start : match.start()]
        quoting.feed(literal)
        parts.append(literal)
        start = match.end()
        escape = _ESCAPES.get(match.group(0))
        if escape is not None:
            parts.append(escape)
            continue
        field_text = match.group(1) if match.group(1) is not None else match.group(2)
        value = lookup(field_text.strip())
        if value is None:
            raise NotExpandable(match.group(0))
        parts.append(quoting.quote(value))
    quoting.feed(text[start:])
    parts.append(text[start:])
    return "".join(parts)


class _Quoting:
    """Where a POSIX shlex reading of a line is (outside quotes, in '...' or in "..."), as it is fed."""

    def __init__(self) -> None:
        self.quote_mark = ""
        self.escaped = False

    def feed(self, text: str) -> None:
        """Move past ``text``, a part of the line as written."""
        for char in text:
            if self.escaped:
                self.escaped = False
            elif self.quote_mark == "'":
                self.quote_mark = "" if char == "'" else "'"
            elif char == "\\":
                self.escaped = True
            elif char == self.quote_mark:
                self.quote_mark = ""
            elif not self.quote_mark and char in "'\"":
                self.quote_mark = char

    def quote(self, value: str) -> str:
        """``value`` written so that shlex reads it back as written, in the word it stands in."""
        if self.escaped and value:  # a backslash before the field escapes the value's first character
            self.escaped = False
            return value[0] + self.quote(value[1:])
        if self.quote_mark == "'":  # close the quote, add the value quoted, open it again
            return "'" + shlex.quote(value) + "'"
        if self.quote_mark == '"':  # in double quotes shlex unescapes only \\ and \"
            return value.replace("\\", "\\\\").replace('"', '\\"')
        return shlex.quote(value)
