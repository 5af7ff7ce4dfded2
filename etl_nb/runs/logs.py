"""Where the scheduler, the worker and the executor write their log lines.

One line per event (run queued, claimed, started, finished, retried, alert
sent, lease expired), as ``key=value`` text or, with ``--log-format json`` or
``ETL_NB_LOG_FORMAT=json``, as JSON lines for a log collector. ``--log-file``
writes a rotating file instead of stderr. Lines are rendered and masked by
``etl_nb._logging``, so a resolved ``${VAR}`` never reaches them.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

from etl_nb._logging import LOG_FORMAT_ENV

_HANDLER_NAME = "etl_nb.runs.logs"


def configure_logging(log_format: str | None = None, log_file: str | Path | None = None) -> None:
    """Send the ``etl_nb`` logger's INFO lines to stderr or a rotating ``log_file``, in ``log_format``."""
    if log_format:
        os.environ[LOG_FORMAT_ENV] = log_format  # read by every logger etl_nb makes, kernels included
    logger = logging.getLogger("etl_nb")
    for handler in [h for h in logger.handlers if h.get_name() == _HANDLER_NAME]:
        logger.removeHandler(handler)
        handler.close()
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        output: logging.Handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=10_000_000, backupCount=5
        )
    else:
        output = logging.StreamHandler(sys.stderr)
    output.set_name(_HANDLER_NAME)
    output.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(output)
    logger.setLevel(logging.INFO)
    logger.propagate = False
