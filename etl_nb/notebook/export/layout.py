"""The small formatter: literals and calls laid out as ``ruff format`` would write them.

The emitter describes a call as a tree (``Call`` of ``Raw`` text and ``Seq``
collections); ``layout`` turns it into lines that fit ``LINE_LENGTH``, so the
generated code passes ``ruff format --check`` as written.
"""

from __future__ import annotations

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
    "flat",
    "layout",
    "quote",
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


def quote(text: str, mark: str) -> str:
    """``text`` as a string literal between ``mark`` quotes, escaped."""
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif char == mark:
            out.append("\\" + mark)
        elif char in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[char])
        elif not char.isprintable():
            out.append(repr(char)[1:-1])
        else:
            out.append(char)
    return mark + "".join(out) + mark


def str_literal(text: str) -> str:
    """A string literal in ruff's preferred quotes (double, unless that needs more escapes)."""
    return quote(text, '"' if text.count('"') <= text.count("'") else "'")


def code_string(text: str) -> str:
    """SQL or code as a string: one line as is, several lines triple-quoted on lines of their own."""
    if "\n" not in text:
        return str_literal(text)
    raw = "\\" in text and '"""' not in text and not text.endswith("\\")
    body = text if raw else text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    body = body.replace("\r", "\\r") if not raw else body
    return ("r" if raw else "") + '"""\n' + body + '\n"""'


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
