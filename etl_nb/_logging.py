"""Structured log lines for etl_nb, with secrets masked before they leave the process.

etl_nb does not configure structlog globally (that is the application's
choice): it wraps the standard ``logging`` logger ``etl_nb``, so log lines go
wherever the host sends that logger, as ``key=value`` text.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import structlog

from etl_nb._secrets import redact


def _redact_event(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return {k: redact(v) if isinstance(v, str) else v for k, v in event.items()}


def get_logger(**context: Any) -> Any:
    """A logger that adds ``context`` (pipeline, run_id, step) to every line."""
    logger = structlog.wrap_logger(
        logging.getLogger("etl_nb"),
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.processors.add_log_level,
            _redact_event,
            structlog.processors.KeyValueRenderer(
                key_order=["event", "pipeline", "run_id", "step"], drop_missing=True
            ),
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    return logger.bind(**context)
