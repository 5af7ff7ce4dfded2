"""The small formatter: literals, comments and calls laid out as ``ruff format`` would write them.

The emitter describes a call as a tree (``Call`` of ``Raw`` text and ``Seq``
collections); ``layout`` turns it into lines that fit ``LINE_LENGTH``, so the
generated code passes ``ruff format --check`` as written.

Text from the notebook that the export writes as a comment or inside a
string goes through ``comment_lines``, ``quote`` or ``code_string`` here, and
only here: each escapes or splits at every character that ends a line for
Python, IPython or an editor, so prose can never become code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "INDENT",
    "LINE_LENGTH",
    "Arg",
    "Call",
    "Node",
    "Raw",
    "Seq",
    "code_string",
    "comment_lines",
    "flat",
    "layout",
    "quote",
    "split_lines",
    "str_literal",
]

LINE_LENGTH = 110  # the project's ruff line length; generated code is formatted for it
INDENT = "    "


@dataclass
class Raw:
    """Code that is never split (a name, a literal, a triple-quoted string)."""

    text: str


@dataclass
class Call:
    """``func(args)``: each argument a node, or ``(keyword, node)``."""

    func: str
    args: list[Arg]


@dataclass
class Seq:
    """A list or dict display: items between ``open`` and ``close`` (``(key, value)`` for a dict)."""

    open: str
    close: str
    items: list[Node | tuple[Node, Node]]


Node = Raw | Call | Seq
Arg = Node | tuple[str, Node]


# Every line break that str.splitlines (and so IPython, editors and many tools) sees; Python's own
# tokenizer ends a line at \r too, so a comment holding any of them may end before the text does.
_LINE_BREAK = re.compile("\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def split_lines(text: str) -> list[str]:
    """``text`` split at every line break (``\\r``, ``\\x0c``, ``\\u2028`` ... as well as ``\\n``)."""
    return _LINE_BREAK.split(text)


def comment_lines(text: str) -> list[str]:
    """``text`` as the lines of a ``#`` comment (without the ``#``): one per line break of any kind.

    Other control characters are written as escapes, so each line stays one
    comment line for Python and for any editor.
    """
    return [_printable(line) for line in split_lines(text)]


def _printable(text: str, keep: str = "\t") -> str:
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in text)


def quote(text: str, mark: str) -> str:
    """``text`` as a string literal between ``mark`` quotes, escaped."""
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif char == mark:
            out.append("\\" + mark)
        elif char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif not char.isprintable():
            out.append(repr(char)[1:-1])
        else:
            out.append(char)
    return mark + "".join(out) + mark


def str_literal(text: str) -> str:
    """A string literal in ruff's preferred quotes (double, unless that needs more escapes)."""
    return quote(text, '"' if text.count('"') <= text.count("'") else "'")


def code_string(text: str) -> str:
    """SQL or code as a string: one line as is, several lines triple-quoted on lines of their own.

    The value is kept exactly: a raw string when the text has backslashes and
    nothing that needs an escape, else an escaped one whose only real line
    breaks are ``\\n``.
    """
    if "\n" not in text:
        return str_literal(text)
    plain = _printable(text, keep="\t\n") == text
    raw = plain and "\\" in text and '"""' not in text and not text.endswith("\\")
    if raw:
        return 'r"""\n' + text + '\n"""'
    body = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return '"""\n' + _printable(body, keep="\t\n") + '\n"""'


def flat(node: Node | tuple[str, Node]) -> str:
    """A node (or keyword argument) on one line."""
    if isinstance(node, tuple):
        return f"{node[0]}={flat(node[1])}"
    if isinstance(node, Raw):
        return node.text
    if isinstance(node, Call):
        return f"{node.func}({', '.join(flat(a) for a in node.args)})"
    return node.open + ", ".join(_flat_item(i) for i in node.items) + node.close


def _flat_item(item: Node | tuple[Node, Node]) -> str:
    if isinstance(item, tuple):
        return f"{flat(item[0])}: {flat(item[1])}"
    return flat(item)


def _fits(indent: str, text: str) -> bool:
    return "\n" not in text and len(indent) + len(text) <= LINE_LENGTH


def layout(node: Node, prefix: str = "", suffix: str = "", indent: str = "") -> list[str]:
    """Lines for ``prefix + node + suffix`` at ``indent``, split the way ruff format splits them.

    Flat if it fits; else a call's arguments go on one indented line if they
    fit there, and otherwise one per line with a trailing comma, each laid out
    in turn. A collection with several items always goes one item per line.
    """
    one_line = prefix + flat(node) + suffix
    if _fits(indent, one_line) or isinstance(node, Raw):
        return [indent + line if i == 0 else line for i, line in enumerate(one_line.split("\n"))]
    if isinstance(node, Call):
        opener, closer = node.func + "(", ")"
        items: list[tuple[str, Node]] = [
            (f"{a[0]}=", a[1]) if isinstance(a, tuple) else ("", a) for a in node.args
        ]
    else:
        opener, closer = node.open, node.close
        items = [(f"{flat(i[0])}: ", i[1]) if isinstance(i, tuple) else ("", i) for i in node.items]
    inner = indent + INDENT
    head, tail = indent + prefix + opener, indent + closer + suffix
    if not items:
        return [indent + one_line]
    body = ", ".join(p + flat(n) for p, n in items)
    if (isinstance(node, Call) or len(items) == 1) and _fits(inner, body):
        return [head, inner + body, tail]
    if len(items) == 1:
        return [head, *layout(items[0][1], items[0][0], "", inner), tail]
    lines = [head]
    for item_prefix, item in items:
        lines += layout(item, item_prefix, ",", inner)
    return [*lines, tail]
