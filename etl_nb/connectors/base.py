"""The interface every connector implements.

A connector is opened once per pipeline session from a ``ConnectionSpec``.
As a source it turns an extract into Arrow record batches (or, when DuckDB
can read the data itself, into a DuckDB relation that the engine fuses with
later steps). As a sink it writes a step's output in two phases: ``write``
stages everything, and the returned ``PendingWrite`` either ``commit``s it
into the target at once or ``abort``s it, so a failed run changes nothing.

Every hook the engine calls, and every capability it asks about, is declared
here with its default; ``docs/connectors.md`` ("Write a connector") walks
through them with an example.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import duckdb

from etl_nb._secrets import resolve
from etl_nb.errors import ConnectorError
from etl_nb.spec import ConnectionSpec, ExtractStep, LoadStep

if TYPE_CHECKING:  # only for annotations: a files pipeline never loads it
    import pyarrow as pa


@dataclass(frozen=True)
class ConnectorContext:
    """What a connector may know about where it runs."""

    base_dir: Path
    env_file: Path | None = None


@dataclass(frozen=True)
class ReadRequest:
    """One extract to perform.

    ``params`` holds the values of the query's ``{{ name }}`` parameters, to be
    bound, never spliced. ``since`` is the incremental high-water mark: only
    rows whose ``incremental`` column is greater are wanted.
    """

    extract: ExtractStep
    params: Mapping[str, Any] = field(default_factory=dict)
    since: Any = None


@dataclass(frozen=True)
class WriteRequest:
    """One load to perform: the step's output as a DuckDB relation in the session.

    Sinks that speak Arrow call ``batches()``; sinks DuckDB can write directly
    (files) use ``relation`` and ``connection``.
    """

    load: LoadStep
    connection: duckdb.DuckDBPyConnection
    table_sql: str  # what to read FROM: the step's table, or a fused subquery
    run_id: str
    batch_rows: int = 122_880

    @property
    def relation(self) -> duckdb.DuckDBPyRelation:
        """The step's rows as a DuckDB relation (built on demand: binding it has a cost)."""
        return self.connection.sql(f"SELECT * FROM {self.table_sql}")

    def batches(self) -> pa.RecordBatchReader:
        """The rows to write, streamed as Arrow record batches."""
        return self.relation.to_arrow_reader(self.batch_rows)


class PendingWrite(Protocol):
    """A load that is staged but not yet visible in its target.

    A write may also carry ``counts`` (a dict, filled by ``commit``): what the
    load did, as ``merge_counts`` builds it. The engine reads it with
    ``getattr``, so connectors that do not count need not have it.
    """

    rows: int

    def commit(self) -> None:
        """Make the staged rows visible in the target, atomically."""

    def abort(self) -> None:
        """Drop what was staged; the target stays as it was."""


def merge_counts(
    inserted: int, updated: int, unchanged: int, changed_columns: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """What a merge does, as every connector reports it (a dry-run and a real merge alike).

    ``changed_columns`` counts, per value column, the matched rows whose value
    changes; only those that change are kept, most often changed first.
    """
    columns = sorted(((c, int(n)) for c, n in (changed_columns or {}).items() if n), key=lambda i: -i[1])
    return {
        "inserted": int(inserted),
        "updated": int(updated),
        "unchanged": int(unchanged),
        "changed_columns": dict(columns),
    }


def count_rows(request: WriteRequest) -> int:
    """How many rows the load's step has (one pass over them)."""
    cursor = request.connection.cursor()
    try:
        return int(cursor.execute(f"SELECT count(*) FROM {request.table_sql}").fetchall()[0][0])
    finally:
        cursor.close()


class Connector(ABC):
    """A source, a sink, or both, for one kind of connection."""

    kind: ClassVar[str]

    scans_rows_once: ClassVar[bool] = False
    """Whether ``write`` reads the step's rows in a single pass (one ``batches()`` or one query).

    The engine asks this before a run: an extract whose source hands Arrow
    batches, read only by a load into such a sink (possibly through SQL
    transforms), is streamed straight from the source into the sink and never
    stored. Such a stream cannot be replayed, so the load is tried once. Leave
    it False if ``write`` may read the rows twice (to check merge keys first, say).
    """

    def __init__(self, spec: ConnectionSpec, context: ConnectorContext) -> None:
        self.spec = spec
        self.context = context
        self._warnings: dict[str, list[str]] = {}

    def resolved(self, text: str) -> str:
        """``text`` (the URL, an option) with each ``${VAR}`` replaced, from the environment or ``.env``.

        Call it in ``open``, never earlier, and keep the result off the spec: the
        value is remembered so that it is masked in every message and log line.
        An unset variable raises ``MissingSecret``, naming this connection.
        """
        return resolve(text, self.context.env_file, connection=self.spec.name)

    def warn(self, step: str, message: str) -> None:
        """Note something the user should know about a step that is not an error (data left out, say).

        The engine marks the step ``warned`` and keeps the notes in the run store.
        """
        self._warnings.setdefault(step, []).append(message)

    def take_warnings(self, step: str) -> list[str]:
        """The notes about ``step`` since the last call, and forget them."""
        return self._warnings.pop(step, [])

    def scanned_columns(self, select: str) -> dict[str, str] | None:
        """The columns (name: DuckDB type) of ``select``, a SELECT that ``scan`` returned, when the
        connector bound it already; None (the default) lets the engine bind it itself.

        Binding a CSV read sniffs the file again (about 30 ms of CPU for 100 MB).
        """
        return None

    def open(self) -> None:
        """Resolve secrets and connect; called once before the first read or write."""

    def close(self) -> None:
        """Release connections and files."""

    def finish_run(self) -> None:
        """Release what a run left open, such as a source stream a failed step stopped reading."""

    def check_extract(self, extract: ExtractStep) -> None:
        """Raise ``SpecError`` if ``extract`` cannot work with this connection, before any I/O."""

    def check_load(self, load: LoadStep) -> None:
        """Raise ``SpecError`` if ``load`` cannot work with this connection, before any I/O."""

    def target_state(self, load: LoadStep) -> dict[str, Any] | None:
        """What ``load``'s target holds now, told cheaply (a file's size and mtime, a table's rows).

        The cache skips a load whose input is unchanged only while its target is
        as the last load left it (``engine/cache.py``); None, "cannot tell",
        makes the load run every time.
        """
        return None

    def scan(self, request: ReadRequest, connection: duckdb.DuckDBPyConnection) -> str | None:
        """A DuckDB SELECT that reads the data lazily, or None to fall back to ``read``.

        A SELECT (rather than a relation) lets the engine keep it as a plain
        view that DuckDB fuses into later steps, binding the source only once.
        """
        return None

    def read(self, request: ReadRequest) -> pa.RecordBatchReader:
        """The extract's rows as a stream of Arrow record batches."""
        raise ConnectorError(
            f"Connection '{self.spec.name}' ({self.kind}) cannot be read from.",
            step=request.extract.name,
        )

    @abstractmethod
    def write(self, request: WriteRequest) -> PendingWrite:
        """Stage the load's rows; return a handle that commits or aborts them."""

    def preview(self, request: WriteRequest) -> dict[str, Any]:
        """What the load would do to its target, writing nothing (``--dry-run``).

        Merge: ``merge_counts``; replace: ``rows_before`` and ``rows_after``;
        append: ``rows_added``. This default knows only the rows the load would
        send (``rows``); connectors that can look at their target say more.
        """
        return {"rows": count_rows(request)}
