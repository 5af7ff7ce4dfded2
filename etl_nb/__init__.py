"""etl_nb: a Jupyter notebook as a real ETL pipeline.

from etl_nb import Pipeline
p = Pipeline("revenue")
p.connect("lake", "./data")
p.extract("orders", source="lake", path="orders/*.csv")
p.transform("revenue", sql="SELECT customer_id, sum(amount) AS revenue FROM orders GROUP BY ALL")
p.check("revenue", [{"not_null": ["customer_id"]}])
p.load("revenue", to="lake", path="out/revenue.parquet", mode="replace")
print(p.run())
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from etl_nb.errors import CheckFailed, ConnectorError, EtlError, PipelineError, SpecError
from etl_nb.results import RunResult, StepResult

if TYPE_CHECKING:
    from etl_nb.pipeline import Pipeline
    from etl_nb.retry import RetryPolicy

# Imported on first use: `Pipeline` brings DuckDB, Polars, pyarrow and SQLAlchemy (about half a
# second), which `etl-nb --help`, `etl-nb runs` and the server extension's start-up do not need;
# `RetryPolicy` brings tenacity (and with it tornado), which `%load_ext etl_nb` does not need.
_LAZY = {"Pipeline": "etl_nb.pipeline", "RetryPolicy": "etl_nb.retry"}

__version__ = "0.1.0"

__all__ = [
    "CheckFailed",
    "ConnectorError",
    "EtlError",
    "Pipeline",
    "PipelineError",
    "RetryPolicy",
    "RunResult",
    "SpecError",
    "StepResult",
    "__version__",
    "current",
    "load_ipython_extension",
]


def __getattr__(name: str) -> Any:
    """``etl_nb.Pipeline`` and ``etl_nb.RetryPolicy``, imported when first asked for."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'etl_nb' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext etl_nb``: register the ``%etl`` / ``%%etl`` magics."""
    from etl_nb.notebook.magics import load_ipython_extension as load

    load(ipython)


def current() -> Pipeline:
    """The pipeline that this notebook's ``%%etl`` cells built."""
    from etl_nb.notebook.magics import current_pipeline

    pipeline: Pipeline = current_pipeline()
    return pipeline
