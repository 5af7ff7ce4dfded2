"""Script assembly and the atomic write.

``join_script`` turns a plan into the text of a ``.py`` file: a docstring
saying how to run it, the imports gathered at the top in isort's groups,
markdown as ``#`` comments, and blank lines where ``ruff format`` puts them.
``write_atomically`` replaces the output only once the whole text is written.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import tempfile
import textwrap
from pathlib import Path

from etl_nb.notebook.export.emit import option_name
from etl_nb.notebook.export.layout import LINE_LENGTH, comment_lines, quote
from etl_nb.notebook.export.plan import Plan
from etl_nb.notebook.export.rewrite import hoist_imports, sorted_imports

__all__ = ["join_script", "script_imports", "write_atomically"]

_DEF = ("def ", "class ", "async def ", "@")


def script_imports(plan: Plan) -> list[str]:
    """The script's import block; the imports of the notebook's own cells move up into it."""
    stdlib: set[str] = set()
    third: set[str] = set()
    first: set[str] = {"from etl_nb import Pipeline"}
    if plan.parameter_names:
        stdlib.add("import argparse")
        if any(isinstance(v, list | dict) for v in plan.parameters.values()):
            stdlib.add("import json")
    stdlib.add("from pathlib import Path")
    if plan.needs_dt:
        stdlib.add("import datetime as dt")
    if plan.needs_pl:
        third.add("import polars as pl")
    for chunk in plan.chunks:
        if chunk.kind == "markdown":
            continue
        chunk.text, hoisted = hoist_imports(chunk.text)
        for line in hoisted:
            module = line.split()[1].split(".")[0]
            if module == "etl_nb":
                first.add(line)
            elif module in sys.stdlib_module_names or module == "__future__":
                stdlib.add(line)
            else:
                third.add(line)
    plan.chunks = [c for c in plan.chunks if c.text.strip() or c.kind == "markdown"]
    blocks = [sorted_imports(group) for group in (stdlib, third, first) if group]
    return [line for block in blocks for line in [*block, ""]][:-1]


def join_script(plan: Plan, source_name: str) -> str:
    """The text of the script for ``plan`` (its imports already gathered by ``script_imports``)."""
    out = [*_docstring(plan, source_name), "", *plan.imports]
    pending: list[str] = []  # markdown comments wait for the code they introduce
    for chunk in plan.chunks:
        if chunk.kind == "markdown":
            if pending:
                pending.append("#")
            pending += _markdown_comment(chunk.text)
            continue
        code = chunk.text.split("\n")
        starts_def = bool(code) and code[0].startswith(_DEF)
        out += ["", ""] if starts_def or _ends_with_def(out) else [""]
        out += pending + code
        pending = []
    if pending:
        out += ["", *pending]
    return "\n".join(out).rstrip("\n") + "\n"


def _docstring(plan: Plan, source_name: str) -> list[str]:
    """What the script is and how to run it, with as many parameters as fit on the example line."""
    simple = {
        n: v
        for n, v in plan.parameters.items()
        if isinstance(v, str | int | float) and not isinstance(v, bool) and n in plan.parameter_names
    }
    stem = _in_docstring(Path(source_name).stem)
    script = f"{stem}.py"
    example = f"    python {script}"
    for n, v in simple.items():  # as many as fit on the line; --help lists them all
        option = f" {option_name(n)} {_in_docstring(shlex.quote(str(v)))}"
        if v == "" or len(example + option) > LINE_LENGTH:
            break
        example += option
    usage = [example]
    if plan.parameter_names:
        usage.append(f"    python {script} --help")
    how = "; the notebook's parameters are command-line options:" if plan.parameter_names else ":"
    return [
        f'"""The {stem} pipeline, exported from {_in_docstring(source_name)} by `etl-nb export`.',
        "",
        f"Run it with plain Python{how}",
        "",
        *usage,
        '"""',
    ]


def _in_docstring(text: str) -> str:
    """Text from the notebook (its file name, a parameter's value) on one line of the docstring."""
    return quote(text, '"')[1:-1]


def _ends_with_def(lines: list[str]) -> bool:
    """Whether the last top-level statement written is a function or class (two blank lines follow it)."""
    for line in reversed(lines):
        if not line or line.startswith((" ", "\t", ")", "]", "}")):
            continue
        return line.startswith(_DEF)
    return False


def _markdown_comment(text: str) -> list[str]:
    width = LINE_LENGTH - 2
    out: list[str] = []
    fenced = False
    for raw in comment_lines(text):
        line = raw.rstrip()
        if line.startswith("```"):
            fenced = not fenced
        if not line:
            out.append("#")
        elif fenced or line.startswith(("    ", "|")) or len(line) <= width:
            out.append(f"# {line}")
        else:
            bullet = re.match(r"(\s*(?:[-*+]|\d+\.)\s+)", line)
            hang = " " * len(bullet.group(1)) if bullet else ""
            wrapped = textwrap.wrap(
                line, width, subsequent_indent=hang, break_long_words=False, break_on_hyphens=False
            )
            out += [f"# {w}" for w in wrapped]
    return out


def write_atomically(target: Path, text: str) -> None:
    """Write ``text`` to ``target`` through a temporary file beside it: never a half-written output."""
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as file:
            file.write(text)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
