"""Connectors: sources that yield Arrow batches and sinks that stage and commit them."""

from etl_nb.connectors.base import (
    Connector,
    ConnectorContext,
    PendingWrite,
    ReadRequest,
    WriteRequest,
)
from etl_nb.connectors.registry import available, connector_class, register

__all__ = [
    "Connector",
    "ConnectorContext",
    "PendingWrite",
    "ReadRequest",
    "WriteRequest",
    "available",
    "connector_class",
    "register",
]
