"""Databases through SQLAlchemy: ``sqlite:///``, ``duckdb:///``, ``mysql+pymysql://`` and any other URL.

Extracts run the cell's SQL on the source with each ``{{ name }}`` sent as a
bound parameter, and stream the rows as Arrow record batches (a server-side
cursor where the driver has one; DuckDB files hand over Arrow directly).

Loads are staged: ``write`` creates a staging table beside the target and
fills it, and the returned ``StagedTable`` makes the rows visible in one
transaction on ``commit`` (``replace`` swaps the staging table in, ``append``
inserts from it, ``merge`` updates matching keys and inserts the rest) or
drops the staging table on ``abort``.

Where things live:

- ``connection.py``: opening (URL, secrets, engine), the connection's hooks;
- ``errors.py``: driver errors sorted and told as one sentence (``db_errors``);
- ``types.py``: column plans, type families, driver rows to Arrow;
- ``dialects.py``: one ``Dialect`` per database, owning its column types and its
  replace, merge, changed-row and commit statements (add a database here);
- ``read.py`` and ``load.py``: the extract and the staged load.

``PostgresConnector`` (``connectors/postgres.py``) overrides the hooks that
move rows (``stream``, ``stage``) with ADBC (psycopg's COPY for a few rows) and sets
``scans_rows_once``.
"""

from __future__ import annotations

from etl_nb.connectors.sql.connection import CONNECTION_OPTIONS, SqlConnection
from etl_nb.connectors.sql.dialects import (
    BATCH_ROWS,
    DIALECTS,
    CommitPlan,
    Dialect,
    DuckDBDialect,
    MySQLDialect,
    PostgresDialect,
    SQLiteDialect,
    dialect_for,
)
from etl_nb.connectors.sql.errors import DbProblem, Doing, classify, db_error, db_errors
from etl_nb.connectors.sql.load import STAGING_PREFIX, SqlLoader, StagedTable
from etl_nb.connectors.sql.read import SINCE_PARAM, SqlReader
from etl_nb.connectors.sql.types import ColumnPlan, LoadShape, StepColumn, family_of, rows_to_batch


class SqlConnector(SqlReader, SqlLoader):
    """A database reached through SQLAlchemy: extracts (``SqlReader``) and staged loads (``SqlLoader``)."""

    kind = "sql"


__all__ = [
    "BATCH_ROWS",
    "CONNECTION_OPTIONS",
    "DIALECTS",
    "SINCE_PARAM",
    "STAGING_PREFIX",
    "ColumnPlan",
    "CommitPlan",
    "DbProblem",
    "Dialect",
    "Doing",
    "DuckDBDialect",
    "LoadShape",
    "MySQLDialect",
    "PostgresDialect",
    "SQLiteDialect",
    "SqlConnection",
    "SqlConnector",
    "SqlLoader",
    "SqlReader",
    "StagedTable",
    "StepColumn",
    "classify",
    "db_error",
    "db_errors",
    "dialect_for",
    "family_of",
    "rows_to_batch",
]
