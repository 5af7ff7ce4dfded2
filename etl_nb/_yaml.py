"""YAML cell bodies, loaded safely and bounded: the one YAML loader.

A body may not be larger than ``MAX_YAML_BODY_BYTES`` nor expand, through its
aliases, past ``MAX_YAML_NODES`` values, so an "alias bomb" is refused in one
line instead of exhausting memory. It imports nothing from etl_nb.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["MAX_YAML_BODY_BYTES", "MAX_YAML_NODES", "load_yaml_body"]

# Bounds on a YAML body: its size, and the nodes it stands for once aliases are expanded. An
# "alias bomb" (a few hundred bytes of &a/*a nesting) stands for billions of values: it would
# exhaust memory as soon as something walks it (JSON for the store, options for DuckDB).
MAX_YAML_BODY_BYTES = 1_000_000
MAX_YAML_NODES = 100_000


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a document that expands to more than ``MAX_YAML_NODES`` nodes."""

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None and _expanded_size(node, {}) > MAX_YAML_NODES:
            raise ValueError(
                f"its aliases (*name) expand to more than {MAX_YAML_NODES:,} values. "
                "Write the values out, or reuse fewer anchors"
            )
        return node


_VISITING = -1


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many nodes ``node`` stands for with every alias expanded (a shared node counts at each use)."""
    known = sizes.get(id(node))
    if known == _VISITING:
        raise ValueError("an alias (*name) refers to a value that contains it, which never ends")
    if known is not None:
        return known
    sizes[id(node)] = _VISITING
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(item, sizes) for item in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    sizes[id(node)] = size
    return size


def load_yaml_body(body: str) -> Any:
    """A cell body as YAML, bounded in size and in alias expansion: the one YAML loader.

    Raises ``yaml.YAMLError`` for YAML that does not parse, and ``ValueError``
    for a body that is too large or expands too far.
    """
    if len(body.encode("utf-8", "surrogatepass")) > MAX_YAML_BODY_BYTES:
        raise ValueError(
            f"it is larger than {MAX_YAML_BODY_BYTES // 1_000_000} MB. Keep data in files or "
            "tables and only settings in the body"
        )
    if "\x00" in body:
        raise ValueError("it contains a NUL byte (\\x00). Remove it")
    loader = _BoundedLoader(body)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
