"""PostgreSQL: the SQL connector with Arrow-native transfer both ways (ADBC).

Rows travel through the ADBC PostgreSQL driver, which speaks PostgreSQL's
binary COPY protocol and fills Arrow arrays in C: an extract without
parameters runs as ``COPY (query) TO STDOUT (FORMAT binary)``, a load stages
its rows with ``COPY ... FROM STDIN (FORMAT binary)``. No value of a large
load passes through a Python object. It was chosen over psycopg's COPY by measurement
(docs/connectors-databases.md): psycopg moves the bytes as fast but leaves
them to be parsed in Python, ADBC parses them in C.

A load reads the step's rows once (``scans_rows_once``): the merge key is
checked on the staged rows, in PostgreSQL, so the engine may stream an
extract straight from its source into the load without storing it in DuckDB.

A small load (at most ``SMALL_LOAD_ROWS`` rows) skips ADBC: importing it and
opening its connection cost more than the rows (0.3 s in a fresh process), so
its rows go through psycopg's ``COPY`` on the connection the engine already
holds. Both paths fill the same staging table, so the target's column types
and values are the same either way; ADBC is imported on first use only.

Everything else (staging, swap, merge, schema evolution, errors) is the SQL
connector's and its ``PostgresDialect``'s, run through SQLAlchemy on psycopg 3;
this module only overrides the hooks ``SqlConnector`` declares for the
transport (``engine_url``, ``create_engine``, ``placeholder``, ``stream``,
``stage``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from etl_nb.connectors.base import ConnectorContext, WriteRequest
from etl_nb.connectors.sql import BATCH_ROWS, LoadShape, PostgresDialect, SqlConnector, StagedTable
from etl_nb.connectors.sql.load import staging_wire
from etl_nb.errors import ConnectorError
from etl_nb.spec import ConnectionSpec

# psycopg comes with the postgres extra, as ADBC does: without it the engine cannot be built,
# which the connection reports as a missing driver package.
try:
    from psycopg import pq
except ImportError:  # pragma: no cover - declared with the postgres extra
    pq = None  # type: ignore[assignment]

_NUMERIC = "numeric"
_DEFAULT_CONNECT_TIMEOUT = 10
# Batches of about 4 MB rather than the driver's 16 MB: as fast (measured), and a stream
# straight into a load holds fewer bytes at once.
_READ_BATCH_BYTES = str(4 * 1024 * 1024)
# Loads of at most this many rows are staged through psycopg's COPY (see the module's docstring).
# Measured on the bench's 11 types: 1,000 rows take about half the time of ADBC's connect and ingest
# even with ADBC imported; from 3,000 to 5,000 rows ADBC is faster.
SMALL_LOAD_ROWS = 1_000
# The families whose Python values psycopg writes as PostgreSQL reads them back (an interval
# arrives from Arrow as a MonthDayNano, which it cannot): other loads always go through ADBC.
_COPIES_AS_TEXT = frozenset(
    {"integer", "decimal", "float", "text", "boolean", "date", "time", "timestamp", "timestamptz"}
    | {"uuid", "json", "binary", "array", "null"}
)


class PostgresConnector(SqlConnector):
    """A PostgreSQL database (``postgresql://``), with Arrow-native extracts and loads."""

    kind = "postgres"
    scans_rows_once = True  # keys are checked on the staged rows, so extracts may stream in

    def __init__(self, spec: ConnectionSpec, context: ConnectorContext) -> None:
        super().__init__(spec, context)
        self._open_streams: list[tuple[Any, Any, Any]] = []  # (reader, cursor, connection)

    # --- opening -------------------------------------------------------------------

    def engine_url(self, url: URL) -> URL:
        """SQLAlchemy (for DDL and the merge) runs on psycopg 3."""
        url = super().engine_url(url)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return url

    def create_engine(self, url: URL, connect_args: dict[str, Any]) -> Engine:
        """The engine, with a connect timeout and the ``schema:`` option as the search path."""
        args = dict(connect_args)
        args.setdefault("connect_timeout", _DEFAULT_CONNECT_TIMEOUT)
        if self.default_schema:
            path = _search_path(url, self.default_schema)
            args["options"] = f"{args.get('options', '')} -c search_path={path},public".strip()
        self.libpq_uri = _libpq_uri(url, args)
        return super().create_engine(url, args)

    def _adbc(self, step: str | None, doing: str) -> Any:
        try:  # imported here: 0.3 s (it brings pyarrow.dataset) that a small load never needs
            import adbc_driver_postgresql.dbapi as adbc  # type: ignore[import-untyped]
        except ImportError:  # pragma: no cover - declared with the postgres extra
            raise ConnectorError(
                "PostgreSQL connections need adbc-driver-postgresql: pip install 'etl_nb[postgres]'.",
                step=step,
            ) from None
        with self.db_errors(doing, step):
            return adbc.connect(self.libpq_uri)

    # --- reading -------------------------------------------------------------------

    def placeholder(self, name: str, position: int) -> str:
        """libpq numbers its parameters: ``$1``, ``$2``, ..."""
        return f"${position}"

    def stream(
        self, step: str, sql: str, names: list[str], values: Mapping[str, Any]
    ) -> pa.RecordBatchReader:
        """The query's rows through ADBC (binary COPY, parsed into Arrow in C)."""
        params = self._typed_params(step, sql, [values[n] for n in names]) if names else None
        conn = self._adbc(step, "the extract")
        with self.db_errors("the extract", step, on_error=conn.close):
            cursor = conn.cursor()
            cursor.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": _READ_BATCH_BYTES})
            cursor.execute(sql, params)
            reader = cursor.fetch_record_batch()
            schema, fixes = _arrow_schema(reader.schema)
        handles = (reader, cursor, conn)
        self._open_streams.append(handles)
        fixed = pa.RecordBatchReader.from_batches(schema, (_fix_batch(b, schema, fixes) for b in reader))
        return self.guarded(fixed, step, lambda: self._end_stream(handles))

    def _end_stream(self, handles: tuple[Any, Any, Any]) -> None:
        """Stop a source query and close its connection, whatever state it is in."""
        if handles in self._open_streams:
            self._open_streams.remove(handles)
        reader, cursor, conn = handles
        # A reader left mid-stream keeps the COPY (and its locks) going: cancel it first.
        for release in (cursor.adbc_cancel, reader.close, cursor.close, conn.close):
            try:
                release()
            except Exception:  # each is best effort; the next one still runs
                continue

    def finish_run(self) -> None:
        """Close the source streams a run left unfinished (a load that failed mid-way)."""
        for handles in list(self._open_streams):
            self._end_stream(handles)

    def close(self) -> None:
        """Close unfinished streams, then the connections."""
        self.finish_run()
        super().close()

    def _typed_params(self, step: str, sql: str, values: list[Any]) -> tuple[Any, ...]:
        """Parameters typed as the query's placeholders are.

        ADBC sends each parameter with the type of its Python value, so the text
        '2026-01-01' compared with a date column would fail. PostgreSQL says which
        type each placeholder has; text values are read as that type, the way
        PostgreSQL reads a quoted literal.
        """
        if not any(isinstance(v, str) for v in values):
            return tuple(values)
        with self.connect("the extract", step) as conn:
            raw: Any = conn.connection.driver_connection
            try:
                oids = self._parameter_types(raw, step, sql)
            finally:
                raw.rollback()
            return tuple(_typed(raw, value, oid, step) for value, oid in zip(values, oids, strict=False))

    def _parameter_types(self, raw: Any, step: str, sql: str) -> list[int]:
        """The type (oid) PostgreSQL gives each placeholder of ``sql``."""
        pgconn = raw.pgconn
        result = pgconn.prepare(b"", sql.encode(), None)
        if result.status != pq.ExecStatus.COMMAND_OK:
            raise ConnectorError(
                f"SQL error in the extract (step '{step}') on connection {self.where()}: "
                f"{(result.error_message or b'').decode(errors='replace').strip().splitlines()[0]}. "
                "Check the SQL; it runs on the source in its own dialect.",
                step=step,
            )
        described = pgconn.describe_prepared(b"")
        return [described.param_type(i) for i in range(described.nparams)]

    # --- writing -------------------------------------------------------------------

    def stage(
        self, request: WriteRequest, shape: LoadShape, staged: StagedTable, schema_exists: bool
    ) -> None:
        """The first rows are read before the staging table is made: a load of at most
        ``SMALL_LOAD_ROWS`` rows gets a logged staging table filled through psycopg's COPY, a larger
        one an unlogged table (for an existing target) filled through ADBC's bulk ingest."""
        # With lossless conversion DuckDB hands UUID and JSON over as Arrow's uuid and
        # json types, which ADBC writes straight into uuid and jsonb columns.
        con = request.connection
        con.execute("SET arrow_lossless_conversion = true")
        try:
            reader = con.sql(f"SELECT {staging_wire(shape)} FROM {request.table_sql}").to_arrow_reader(
                BATCH_ROWS
            )
            head, more = _read_up_to(reader, SMALL_LOAD_ROWS)
            few = not more and all(p.family in _COPIES_AS_TEXT for p in shape.plans)
            rows = _python_rows(head) if few else None
            if rows is not None:
                self.make_staging(request.load, replace(shape, few_rows=True), staged, schema_exists)
                staged.rows = self._copy_rows(shape, rows)
                return
            self.make_staging(request.load, shape, staged, schema_exists)
            rest = pa.RecordBatchReader.from_batches(reader.schema, itertools.chain(head, reader))
            staged.rows = self._ingest(request, shape, _plain_booleans(rest))
        finally:
            con.execute("RESET arrow_lossless_conversion")

    def _copy_rows(self, shape: LoadShape, rows: list[tuple[Any, ...]]) -> int:
        """Few rows through text ``COPY`` on the engine's psycopg connection: PostgreSQL reads each
        value as the staging column's type, as from ADBC's binary COPY."""
        columns = ", ".join(self.dialect.quote(p.name) for p in shape.plans)
        with self.engine.begin() as conn:
            conn.execute(sa.text(PostgresDialect.NO_FLUSH))
            raw: Any = conn.connection.driver_connection
            with (
                raw.cursor() as cursor,
                cursor.copy(f"COPY {self.dialect.stage(shape)} ({columns}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
        return len(rows)

    def _ingest(self, request: WriteRequest, shape: LoadShape, reader: pa.RecordBatchReader) -> int:
        """The rows through ADBC's bulk ingest (binary COPY from Arrow)."""
        conn = self._adbc(request.load.step, "the load")
        try:
            with conn.cursor() as cursor:
                cursor.execute("SET synchronous_commit TO OFF")  # its own connection: see NO_FLUSH
                rows = cursor.adbc_ingest(shape.staging, reader, mode="append", db_schema_name=shape.schema)
            conn.commit()
        finally:
            conn.close()
        if rows is None or rows < 0:  # pragma: no cover - the driver always counts
            # Count what was staged: the step's rows may have been a stream, read once.
            with self.engine.connect() as counting:
                staged = sa.text(f"SELECT count(*) FROM {self.qualified(shape.schema, shape.staging)}")
                return int(counting.execute(staged).scalar() or 0)
        return int(rows)


def _read_up_to(reader: pa.RecordBatchReader, limit: int) -> tuple[list[pa.RecordBatch], bool]:
    """The reader's first batches, up to just past ``limit`` rows; whether it may hold more."""
    head: list[pa.RecordBatch] = []
    rows = 0
    for batch in reader:
        head.append(batch)
        rows += batch.num_rows
        if rows > limit:
            return head, True
    return head, False


def _python_rows(batches: list[pa.RecordBatch]) -> list[tuple[Any, ...]] | None:
    """The rows as Python values, or None where one has no Python counterpart (a date past 9999)."""
    rows: list[tuple[Any, ...]] = []
    try:
        for batch in batches:
            rows.extend(zip(*(column.to_pylist() for column in batch.columns), strict=True))
    except (ValueError, OverflowError, pa.ArrowException):
        return None
    return rows


_TEXT_OIDS = (0, 25, 1043, 19, 705)  # unknown, text, varchar, name, unknown literal


def _typed(raw: Any, value: Any, oid: int, step: str) -> Any:
    """A text parameter read as the type ``oid`` of its place in the query, as a literal would be."""
    if not isinstance(value, str) or oid in _TEXT_OIDS:
        return value
    loader = raw.adapters.get_loader(oid, pq.Format.TEXT)
    if loader is None:
        return value
    try:
        return loader(oid, raw).load(value.encode())
    except Exception:
        raise ConnectorError(
            f"Parameter value {value!r} of step '{step}' cannot be read as the type "
            "its place in the query needs. Pass a value of that type.",
            step=step,
        ) from None


def _search_path(url: URL, schema: str) -> str:
    """The ``schema:`` option quoted as PostgreSQL quotes identifiers, escaped for libpq's options."""
    quoted = str(url.get_dialect()().identifier_preparer.quote_schema(schema))
    return quoted.replace("\\", "\\\\").replace(" ", "\\ ")


def _plain_booleans(reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
    """The batches with Arrow's bool8 (what lossless conversion makes of BOOLEAN) as plain booleans."""

    def plain(kind: pa.DataType) -> pa.DataType:
        if isinstance(kind, pa.BaseExtensionType) and kind.extension_name == "arrow.bool8":
            return pa.bool_()
        if pa.types.is_list(kind):
            return pa.list_(plain(kind.value_type))
        return kind

    schema = pa.schema([pa.field(f.name, plain(f.type), f.nullable) for f in reader.schema])
    if schema.equals(reader.schema):
        return reader

    def convert(array: pa.Array) -> pa.Array:
        if isinstance(array, pa.ExtensionArray) and array.type.extension_name == "arrow.bool8":
            return array.storage.cast(pa.bool_())
        if isinstance(array, pa.ListArray) and array.type != plain(array.type):
            return pa.ListArray.from_arrays(array.offsets, convert(array.values), mask=array.is_null())
        return array

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            yield pa.RecordBatch.from_arrays([convert(c) for c in batch.columns], schema=schema)

    return pa.RecordBatchReader.from_batches(schema, batches())


def _libpq_uri(url: URL, connect_args: Mapping[str, Any]) -> str:
    """The URL as libpq takes it (ADBC), with connect_args as URI parameters."""
    base = url.set(drivername="postgresql", query={})
    uri = base.render_as_string(hide_password=False)
    query = {**{k: v for k, v in url.query.items() if isinstance(v, str)}, **connect_args}
    if query:
        uri += "?" + "&".join(f"{quote(str(k))}={quote(str(v), safe='')}" for k, v in query.items())
    return uri


def _arrow_schema(schema: pa.Schema) -> tuple[pa.Schema, dict[int, pa.DataType]]:
    """The schema extracts hand on, and which columns need converting.

    ADBC gives numeric as an opaque string type: with a declared precision and
    scale it becomes an exact decimal; unconstrained numeric stays text (any
    fixed decimal type could cut its digits). Other opaque types become text.
    """
    fields = []
    fixes: dict[int, pa.DataType] = {}
    for index, original in enumerate(schema):
        item, kind = original, original.type
        if isinstance(kind, pa.BaseExtensionType) and kind.extension_name == "arrow.opaque":
            wanted: pa.DataType = pa.string()
            meta = item.metadata or {}
            typmod = int(meta.get(b"POSTGRESQL:typmod", b"-1") or -1)
            if _opaque_name(kind) == _NUMERIC and typmod >= 4:
                precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
                wanted = (
                    pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
                )
            fixes[index] = wanted
            item = pa.field(item.name, wanted, item.nullable)
        else:
            item = item.remove_metadata()
        fields.append(item)
    return pa.schema(fields), fixes


def _opaque_name(kind: Any) -> str:
    name = getattr(kind, "type_name", None)
    if name:
        return str(name)
    match = re.search(r"type_name=(\w+)", str(kind))
    return match.group(1) if match else ""


def _fix_batch(batch: pa.RecordBatch, schema: pa.Schema, fixes: Mapping[int, pa.DataType]) -> pa.RecordBatch:
    if not fixes:
        return pa.RecordBatch.from_arrays(batch.columns, schema=schema)
    columns = list(batch.columns)
    for index, wanted in fixes.items():
        storage = columns[index].storage
        columns[index] = storage if wanted == pa.string() else pc.cast(storage, wanted)
    return pa.RecordBatch.from_arrays(columns, schema=schema)
