"""Extracts: the cell's SQL run on the source, its rows streamed as Arrow record batches.

Each ``{{ name }}`` is sent as a bound parameter (``placeholder`` says how it
is written); ``--incremental`` wraps the query to keep only newer rows. How
the rows travel is the dialect's (``Dialect.stream``), or a subclass's
``stream`` hook (PostgreSQL's ADBC).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pyarrow as pa

from etl_nb.connectors.base import ReadRequest
from etl_nb.connectors.sql.connection import SqlConnection
from etl_nb.errors import SpecError
from etl_nb.spec import PARAMETER, ExtractStep

SINCE_PARAM = "etl_nb_since"


class SqlReader(SqlConnection):
    """The reading half of the SQL connector."""

    def check_extract(self, extract: ExtractStep) -> None:
        """A database extract is SQL, not a ``path:`` body."""
        if extract.query is None or extract.path is not None:
            raise SpecError(
                f"Extract '{extract.name}' reads the database '{self.spec.name}': its body is SQL in the "
                "database's dialect (SELECT ...), not 'path:'.",
                step=extract.name,
            )
        if not extract.query.strip():
            raise SpecError(f"Extract '{extract.name}' has an empty query.", step=extract.name)

    def extract_sql(self, request: ReadRequest) -> tuple[str, list[str]]:
        """The query to run, with ``{{ name }}`` as placeholders, and the names in placeholder order.

        With ``request.since`` set, the query is wrapped so that only rows newer
        than the high-water mark come back.
        """
        extract = request.extract
        assert extract.query is not None
        query = extract.query.strip().rstrip(";").strip()
        names: list[str] = []

        def placeholder(match: re.Match[str]) -> str:
            names.append(match.group(1))
            return self.placeholder(match.group(1), len(names))

        sql = PARAMETER.sub(placeholder, query)
        if request.since is not None and extract.incremental:
            column = self.dialect.quote(extract.incremental)
            names.append(SINCE_PARAM)
            sql = (
                f"SELECT * FROM (\n{sql}\n) etl_nb_q WHERE etl_nb_q.{column} > "
                f"{self.placeholder(SINCE_PARAM, len(names))}"
            )
        return sql, names

    def placeholder(self, name: str, position: int) -> str:
        """Hook: how the query marks the ``position``-th bound parameter ``name`` (here ``:name``)."""
        return f":{name}"

    def read(self, request: ReadRequest) -> pa.RecordBatchReader:
        """Run the extract's query and stream its rows as Arrow record batches."""
        sql, names = self.extract_sql(request)
        values = dict(request.params)
        if SINCE_PARAM in names:
            values[SINCE_PARAM] = request.since
        return self.stream(request.extract.name, sql, names, values)

    def stream(
        self, step: str, sql: str, names: list[str], values: Mapping[str, Any]
    ) -> pa.RecordBatchReader:
        """Hook: run ``sql`` with the values of ``names`` bound; its rows as Arrow record batches.

        Errors before the first batch are raised here; later ones while the
        batches are read. The connection closes when the stream ends.
        """
        params = {n: values[n] for n in names}
        conn = self.connect("the extract", step)
        with self.db_errors("the extract", step, on_error=conn.close):
            reader = self.dialect.stream(conn, sql, params)
        return self.guarded(reader, step, conn.close)

    def guarded(
        self, reader: pa.RecordBatchReader, step: str, release: Callable[[], None]
    ) -> pa.RecordBatchReader:
        """``reader`` with a driver error mid-stream explained, and ``release`` called at its end."""

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                with self.db_errors("the extract", step):
                    yield from reader
            finally:
                release()

        return pa.RecordBatchReader.from_batches(reader.schema, batches())
