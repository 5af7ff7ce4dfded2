"""Structured log lines for etl_nb, with secrets masked before they leave the process.

etl_nb does not configure structlog globally (that is the application's
choice): it wraps the standard ``logging`` logger ``etl_nb``, so log lines go
wherever the host sends that logger, as ``key=value`` text.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from etl_nb._masking import redact


def _redact_line(_logger: Any, _name: str, line: Any) -> str:
    # After rendering, so values nested in dicts or exception reprs are masked too.
    return redact(str(line))


class _RedactingFilter(logging.Filter):
    """Masks secrets in lines logged straight on the ``etl_nb`` logger, without structlog."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


_logger = logging.getLogger("etl_nb")
if not any(isinstance(f, _RedactingFilter) for f in _logger.filters):
    _logger.addFilter(_RedactingFilter())


LOG_FORMAT_ENV = "ETL_NB_LOG_FORMAT"  # "json": one JSON object per line, for log collectors


def _renderer() -> Any:
    import structlog

    if os.environ.get(LOG_FORMAT_ENV, "").lower() == "json":
        return structlog.processors.JSONRenderer(default=str)
    return structlog.processors.KeyValueRenderer(
        key_order=["event", "pipeline", "run_id", "step"], drop_missing=True
    )


def get_logger(**context: Any) -> Any:
    """A logger that adds ``context`` (pipeline, run_id, step) to every line."""
    # Imported here: structlog brings rich (about 50 ms), which a command that logs nothing
    # (`etl-nb runs`) need not pay.
    import structlog

    logger = structlog.wrap_logger(
        logging.getLogger("etl_nb"),
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
            _renderer(),
            _redact_line,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    return logger.bind(**context)
