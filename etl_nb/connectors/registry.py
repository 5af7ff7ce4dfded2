"""Which connector class serves which kind of connection.

Kinds come from the ``etl_nb.connectors`` entry-point group, so other
packages add kinds without touching etl_nb; ours register the same way.
``register`` adds a kind from code (tests, notebooks).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from importlib.metadata import entry_points

from etl_nb.connectors.base import Connector
from etl_nb.errors import SpecError, did_you_mean

ENTRY_POINT_GROUP = "etl_nb.connectors"

# Our own kinds. They are declared as entry points too (for tools that list the group), but are
# found here without reading every installed package's metadata: that scan costs 30-50 ms, paid
# only for a kind that is not one of these.
_BUILTIN = {
    "files": "etl_nb.connectors.files:FilesConnector",
    "sql": "etl_nb.connectors.sql:SqlConnector",
    "postgres": "etl_nb.connectors.postgres:PostgresConnector",
    "http": "etl_nb.connectors.http:HttpConnector",
}

_registered: dict[str, type[Connector]] = {}


def register(kind: str) -> Callable[[type[Connector]], type[Connector]]:
    """Class decorator that makes ``kind`` connections use the decorated class."""

    def decorate(cls: type[Connector]) -> type[Connector]:
        cls.kind = kind
        _registered[kind] = cls
        return cls

    return decorate


def _targets() -> dict[str, str]:
    targets = dict(_BUILTIN)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        targets[point.name] = point.value
    return targets


def available() -> list[str]:
    """Every connection kind that can be used."""
    return sorted(set(_targets()) | set(_registered))


def connector_class(kind: str) -> type[Connector]:
    """The connector class for ``kind``; a clear ``SpecError`` if there is none."""
    if kind in _registered:
        return _registered[kind]
    target = _BUILTIN.get(kind) or _targets().get(kind)
    if target is None:
        hint = did_you_mean(kind, available())
        raise SpecError(
            f"No connector for connections of type '{kind}'.{hint} Types: {', '.join(available())}."
        )
    module_name, _, attr = target.partition(":")
    try:
        module = import_module(module_name)
    except ImportError as exc:
        raise SpecError(
            f"Connections of type '{kind}' need an extra package: {exc.name}. "
            f"Install it with: pip install 'etl_nb[all]'."
        ) from None
    cls: type[Connector] = getattr(module, attr)
    _registered.setdefault(kind, cls)
    return cls
