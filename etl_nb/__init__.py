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

from typing import TYPE_CHECKING, Any

from etl_nb._lazy import lazy_attributes
from etl_nb.errors import CheckFailed, ConnectorError, EtlError, PipelineError, SpecError
from etl_nb.results import RunResult, StepResult
from etl_nb.retry import RetryPolicy

if TYPE_CHECKING:
    from etl_nb.pipeline import Pipeline

# Imported on first use: `Pipeline` brings DuckDB, Polars, pyarrow and SQLAlchemy (about half a
# second), which `etl-nb --help`, `etl-nb runs`, `%load_ext etl_nb` and the server extension's
# start-up do not need. (`RetryPolicy` imports tenacity only when it first retries.)
_LAZY = {"Pipeline": "etl_nb.pipeline"}

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


__getattr__ = lazy_attributes(__name__, _LAZY)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext etl_nb``: register the ``%etl`` / ``%%etl`` magics."""
    from etl_nb.notebook.magics import load_ipython_extension as load

    load(ipython)


def current() -> Pipeline:
    """The pipeline that this notebook's ``%%etl`` cells built."""
    from etl_nb.notebook.magics import current_pipeline

    pipeline: Pipeline = current_pipeline()
    return pipeline
