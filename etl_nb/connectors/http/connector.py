"""``HttpConnector``: a REST API as a source of Arrow record batches, one per page.

The connector checks the extract body, binds its ``{{ name }}`` parameters
into query parameters, and walks the pages: the paginator (``paginate.py``)
says where the next page is, the client (``client.py``) fetches it, and
``records.py`` turns it into a batch that fits the stream's schema.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator, Iterator, Mapping
from typing import Any

import pyarrow as pa

from etl_nb._logging import get_logger
from etl_nb.connectors.base import Connector, PendingWrite, ReadRequest, WriteRequest
from etl_nb.connectors.http.client import ApiClient, open_client
from etl_nb.connectors.http.paginate import Page, Paginator, paginator_for
from etl_nb.connectors.http.prefetch import prefetched
from etl_nb.connectors.http.records import (
    Records,
    as_batch,
    conform_batch,
    count,
    declared_schema,
    empty_schema,
    newer_than,
    read_page,
)
from etl_nb.errors import ConnectorError, MissingParameter, SpecError
from etl_nb.spec import ANY_PARAMETER, PARAMETER, ExtractStep, LoadStep


class HttpConnector(Connector):
    """A REST API answering JSON: a source only."""

    kind = "http"

    client: ApiClient | None = None

    def open(self) -> None:
        """Validate the connect body, resolve its ``${VAR}`` secrets and create the HTTP client."""
        self.log = get_logger(connection=self.spec.name)
        self.client = open_client(self.spec, self.context.env_file)

    def close(self) -> None:
        """Close the HTTP client and its pooled connections."""
        if self.client is not None:
            self.client.close()
            self.client = None

    # --- checks --------------------------------------------------------------------------

    def check_extract(self, extract: ExtractStep) -> None:
        """An http extract needs ``path:``; ``paginate:`` and ``records:`` must be well formed."""
        name = extract.name
        if extract.path is None:
            raise SpecError(
                f"Extract '{name}' reads the REST API '{self.spec.name}': its body needs 'path: /users' "
                "(with optional params:, records:, paginate:), not SQL.",
                step=name,
            )
        if ANY_PARAMETER.search(extract.path):
            raise SpecError(
                f"Extract '{name}': 'path:' cannot hold a {{{{ parameter }}}}; values are sent as query "
                "parameters, never spliced into the URL. Put it under 'params:', e.g. "
                "params: {since: '{{ start_date }}'}.",
                step=name,
            )
        if extract.format is not None or extract.options:
            key = "format" if extract.format is not None else "options"
            raise SpecError(
                f"Extract '{name}': '{key}:' is for files; a REST extract takes path:, params:, "
                "records: and paginate:.",
                step=name,
            )
        if extract.records is not None and not all(extract.records.split(".")):
            raise SpecError(
                f"Extract '{name}': 'records: {extract.records}' is not a dot path such as 'data' or "
                "'result.items'.",
                step=name,
            )
        paginator_for(extract)

    def check_load(self, load: LoadStep) -> None:
        """Loads into a REST API are not supported: a ``SpecError`` says so."""
        raise _no_loads(load)

    def write(self, request: WriteRequest) -> PendingWrite:
        """Loads into a REST API are not supported: a ``SpecError`` says so."""
        raise _no_loads(request.load)

    # --- reading -------------------------------------------------------------------------

    def read(self, request: ReadRequest) -> pa.RecordBatchReader:
        """The extract's records, one batch per page, streamed as the pages arrive.

        The first page is fetched now (its records fix the schema); the rest
        are fetched as the reader is consumed, by a thread that runs up to
        two pages ahead.
        """
        extract = request.extract
        self.check_extract(extract)
        pages = prefetched(
            self._pages(extract, paginator_for(extract), bind_params(extract, request.params)),
            name=f"etl_nb-http-{extract.name}",
        )
        first = next(pages, None)
        if first is None:
            pages.close()
            return pa.RecordBatchReader.from_batches(empty_schema(extract), iter(()))
        first_batch = as_batch(first[1])
        schema = declared_schema(first_batch.schema)
        del first

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                yield self._finish(extract, request.since, 1, first_batch, schema)
                for number, page in pages:
                    yield self._finish(extract, request.since, number, as_batch(page), schema)
            finally:
                pages.close()

        return pa.RecordBatchReader.from_batches(schema, batches())

    def _finish(
        self, extract: ExtractStep, since: Any, number: int, batch: pa.RecordBatch, schema: pa.Schema
    ) -> pa.RecordBatch:
        notes: list[str] = []
        batch = conform_batch(batch, schema, notes)
        if notes:
            self.log.warning(
                "page does not fit the schema of the first page",
                step=extract.name,
                page=number,
                changes="; ".join(notes),
            )
            self.warn(extract.name, f"page {number} did not fit the first page's columns: {'; '.join(notes)}")
        if since is not None and extract.incremental:
            batch = newer_than(batch, extract.incremental, since, extract.name)
        return batch

    def _pages(
        self, extract: ExtractStep, paginator: Paginator, params: dict[str, Any]
    ) -> Generator[tuple[int, Records]]:
        """Each page's records (with the page's number), until the API runs out or ``max_pages``.

        A page comes as a record batch when Polars could parse it straight from
        the bytes, else as the list of JSON records.
        """
        client = self._client(extract)
        path: str = extract.path or ""
        url, query = path, {**params, **paginator.first_params()}
        number = 0
        while paginator.max_pages is None or number < paginator.max_pages:
            number += 1
            response = client.get(extract.name, url, query, number)
            records, body = read_page(extract, response, number, keep_body=paginator.reads_body)
            rows = count(records)
            if not rows:
                return
            yield number, records
            following = paginator.next_params(Page(number, rows, response, body))
            if following is None:
                return
            if following.url is None:
                url, query = path, {**params, **following.params}
            else:  # the URL carries its own query
                url, query = following.url, dict(following.params)

    def _client(self, extract: ExtractStep) -> ApiClient:
        if self.client is None:
            raise ConnectorError(f"Connection '{self.spec.name}' is closed.", step=extract.name)
        return self.client


def _no_loads(load: LoadStep) -> SpecError:
    return SpecError(
        f"Load '{load.step}' targets '{load.to}', a REST API: etl_nb reads from APIs but does not "
        "write to them. Load into a database or a folder instead.",
        step=load.step,
    )


def bind_params(extract: ExtractStep, values: Mapping[str, Any]) -> dict[str, Any]:
    """The extract's ``params:`` as query parameters, each ``{{ name }}`` replaced by its value.

    A value that is only ``{{ name }}`` takes the parameter's value; inside
    other text the value is put in as text. Either way it stays one query
    parameter's value, URL-encoded by httpx, never part of the path.
    """

    def value_of(name: str) -> Any:
        if name not in values:
            raise MissingParameter(name, step=extract.name, known=values, where=" in 'params:'")
        return values[name]

    def bind(value: Any) -> Any:
        if isinstance(value, list):
            return [bind(v) for v in value]
        if not isinstance(value, str):
            return _query_value(value)
        whole = PARAMETER.fullmatch(value.strip())
        if whole:
            return _query_value(value_of(whole.group(1)))
        return PARAMETER.sub(lambda m: str(_query_value(value_of(m.group(1)))), value)

    return {str(k): bind(v) for k, v in extract.params.items() if v is not None}


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_query_value(v) for v in value]
    return value
