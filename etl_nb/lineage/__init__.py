"""OpenLineage events from the spec and the run, and the column lineage of a pipeline.

Two halves:

- ``pipeline_lineage(spec, ...)`` (pure): the datasets a pipeline reads and
  writes, named the OpenLineage way, and for every loaded column the source
  columns it comes from. It parses each step's SQL with sqlglot: a column
  used in a projection is ``DIRECT`` (``IDENTITY``, ``TRANSFORMATION`` or
  ``AGGREGATION``); one used in a join, a filter, a group-by, a sort or a
  window is ``INDIRECT`` for every column of that step. A Python step's
  columns come from the input columns its code names. Lineage composes
  through the steps down to the extracted sources. ``etl-nb lineage NB``
  prints it without running anything.
- ``RunLineage``: a START event when a run begins and COMPLETE or FAIL when it
  ends, through openlineage-python, configured the standard way
  (``OPENLINEAGE_URL``, ``OPENLINEAGE_CONFIG``, ``openlineage.yml``,
  ``OPENLINEAGE__TRANSPORT__...``). Without configuration nothing is built
  or imported: ``RunLineage.start`` returns None after a few ``os`` calls.

Dataset names follow the OpenLineage naming spec: ``postgres://host:port``
+ ``db.schema.table``, ``mysql://host:port`` + ``db.table``, ``file`` + an
absolute path, ``https://host`` + path. They are built from connection URLs
as written, never from resolved ``${VAR}`` values, and every text in an
event passes through ``redact``: secrets never appear in an event.
"""

from __future__ import annotations

from etl_nb.lineage.columns import last_good_columns, pipeline_lineage
from etl_nb.lineage.datasets import extract_dataset, load_dataset, table_dataset
from etl_nb.lineage.events import RunLineage, configured, reset_client
from etl_nb.lineage.model import (
    DEFAULT_NAMESPACE,
    NAMESPACE_ENV,
    Dataset,
    InputColumn,
    OutputLineage,
    PipelineLineage,
)

__all__ = [
    "DEFAULT_NAMESPACE",
    "NAMESPACE_ENV",
    "Dataset",
    "InputColumn",
    "OutputLineage",
    "PipelineLineage",
    "RunLineage",
    "configured",
    "extract_dataset",
    "last_good_columns",
    "load_dataset",
    "pipeline_lineage",
    "reset_client",
    "table_dataset",
]
