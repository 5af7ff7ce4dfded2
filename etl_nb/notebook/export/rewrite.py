"""Python-source rewriting: the notebook's own code, made fit for a script or a plain notebook.

``%load_ext etl_nb`` goes, ``etl_nb.current()`` becomes the pipeline's
variable, IPython-only lines become comments in a script, a ``--python``
transform's code becomes a function, and a script's imports move to its top.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize

from etl_nb.notebook.export.layout import INDENT, comment_lines, split_lines

__all__ = [
    "ETL_LINE",
    "as_function",
    "comment_magics",
    "drop_load_ext",
    "has_load_ext",
    "hoist_imports",
    "sorted_imports",
    "use_pipeline",
]

ETL_LINE = re.compile(r"^(\s*)%etl(\s|$)")  # a %etl line magic; group 1 is its indentation
_LOAD_EXT = re.compile(r"^\s*%load_ext\s+etl_nb\s*$")
_CURRENT = re.compile(r"\betl_nb\.current\(\)")
_MAGIC_LINE = re.compile(r"^(\s*)([%!].*)$")
_IMPORT_ETL_NB = re.compile(r"^import etl_nb[ \t]*(\n[ \t]*)*(\n|\Z)", re.MULTILINE)


def has_load_ext(source: str) -> bool:
    """Whether ``source`` has a ``%load_ext etl_nb`` line."""
    return any(_LOAD_EXT.match(line) for line in source.split("\n"))


def is_load_ext(line: str) -> bool:
    """Whether ``line`` is ``%load_ext etl_nb``."""
    return _LOAD_EXT.match(line) is not None


def drop_load_ext(source: str) -> str:
    """``source`` without its ``%load_ext etl_nb`` lines: the export needs no magics."""
    return "\n".join(line for line in source.split("\n") if not _LOAD_EXT.match(line))


def reads_pipeline(text: str) -> bool:
    """Whether ``text`` uses ``etl_nb.current()``."""
    return _CURRENT.search(text) is not None


def use_pipeline(text: str, p: str) -> str:
    """``etl_nb.current()`` as the variable ``p``; an ``import etl_nb`` nothing else needs goes."""
    text = _CURRENT.sub(p, text)
    if not re.search(r"\betl_nb\b", _IMPORT_ETL_NB.sub("", text)):
        text = re.sub(r"\n{3,}", "\n\n", _IMPORT_ETL_NB.sub("", text)).strip("\n")
    return text


def comment_magics(text: str) -> str:
    """IPython-only lines (``%magic``, ``!shell``) as comments: a script runs under plain Python.

    Lines are split as IPython splits a cell with magics (at ``\\r``,
    ``\\x0c``, ``\\u2028`` ... too), so what follows such a break stays the
    code it was in the notebook and a comment never holds one.
    """
    if text.lstrip().startswith("%%"):  # a cell magic: its whole body is the magic's, never Python
        return "\n".join(f"# {line}" if line else "#" for line in comment_lines(text))
    lines = split_lines(text)
    if not any(_MAGIC_LINE.match(line) for line in lines):
        return text
    return "\n".join(
        f"{m.group(1)}# {comment_lines(m.group(2))[0]}  (IPython only)"
        if (m := _MAGIC_LINE.match(line))
        else line
        for line in lines
    )


def as_function(name: str, code: str, inputs: list[str], free: list[str]) -> list[str] | None:
    """A Python transform's code as ``def NAME(inputs): ...`` returning its last expression.

    None when a function would not run the code the same way: a name both read
    from outside and assigned, a multi-line string (indenting would change it),
    ``global``/``return``/``yield`` at the top, or no result to return.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    if not tree.body:
        return None
    bound = _bound_names(tree)
    if bound & set(free):
        return None
    scoped = (ast.Global, ast.Nonlocal, ast.Return, ast.Yield, ast.YieldFrom, ast.Await)
    if any(isinstance(n, scoped) for stmt in tree.body for n in _walk_top(stmt)):
        return None
    if _multiline_tokens(code):
        return None
    lines = code.split("\n")
    last = tree.body[-1]
    if isinstance(last, ast.Expr):
        if last.col_offset != 0:
            return None
        row = last.lineno - 1
        lines[row] = "return " + lines[row]
    elif name in bound:
        lines.append(f"return {name}")
    else:
        return None
    body = [INDENT + line if line.strip() else "" for line in lines]
    return [f"def {name}({', '.join(inputs)}):", *body]


def _bound_names(tree: ast.Module) -> set[str]:
    """Names the code assigns, imports or defines at its top level (or anywhere, for assignments)."""
    bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    bound |= {
        (a.asname or a.name).split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    bound |= {n.name for n in tree.body if isinstance(n, definitions)}
    return bound


def _walk_top(node: ast.AST) -> list[ast.AST]:
    """Nodes of ``node`` outside nested function and class bodies (whose returns are their own)."""
    found: list[ast.AST] = []
    stack = [node]
    while stack:
        current = stack.pop()
        found.append(current)
        if current is not node and isinstance(
            current, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef
        ):
            continue
        stack.extend(ast.iter_child_nodes(current))
    return found


def _multiline_tokens(code: str) -> bool:
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        return True
    skip = {tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    return any(t.start[0] != t.end[0] for t in tokens if t.type not in skip)


def hoist_imports(text: str) -> tuple[str, list[str]]:
    """A script's top-level imports go to the top of the file (E402); returns the rest and the imports."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text, []
    lines = text.split("\n")
    hoisted: list[str] = []
    drop: set[int] = set()
    for node in tree.body:
        if not isinstance(node, ast.Import | ast.ImportFrom) or node.end_lineno is None:
            continue
        if isinstance(node, ast.Import):
            hoisted += [f"import {a.name}" + (f" as {a.asname}" if a.asname else "") for a in node.names]
        else:
            module = "." * node.level + (node.module or "")
            hoisted += [
                f"from {module} import {a.name}" + (f" as {a.asname}" if a.asname else "") for a in node.names
            ]
        drop |= set(range(node.lineno - 1, node.end_lineno))
    kept = [line for i, line in enumerate(lines) if i not in drop]
    return "\n".join(kept).strip("\n"), hoisted


def sorted_imports(group: set[str]) -> list[str]:
    """isort's order: ``import x`` lines first, then ``from x import a, b`` merged per module."""
    straight = sorted((line for line in group if line.startswith("import ")), key=lambda s: s.lower())
    merged: dict[str, list[str]] = {}
    for line in group:
        if line.startswith("from "):
            module, names = line[5:].split(" import ", 1)
            merged.setdefault(module, []).append(names)
    froms = [
        f"from {module} import {', '.join(sorted(set(names), key=_member_order))}"
        for module, names in sorted(merged.items(), key=lambda kv: kv[0].lower())
    ]
    return straight + froms


def _member_order(name: str) -> tuple[int, str]:
    bare = name.split(" as ", maxsplit=1)[0]
    kind = 0 if bare.isupper() and len(bare) > 1 else 1 if bare[:1].isupper() else 2
    return kind, bare.lower()
