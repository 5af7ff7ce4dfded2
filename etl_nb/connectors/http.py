"""REST APIs over HTTP: JSON pages in, Arrow record batches out.

One ``httpx.Client`` per connection carries the base URL, headers, auth and
timeout. An extract walks the API page by page (page numbers, offsets,
cursors, ``Link`` headers or a single request) and turns each page's records
into one Arrow record batch as it arrives, so memory holds a few pages
whatever the size of the API. A thread fetches up to two pages ahead, so the
network and JSON parsing overlap with DuckDB storing the previous page.
Pages are parsed by Polars straight from the bytes when it can (Rust, no
Python objects); anything unusual takes the ``json`` module's path, which
also words the errors.

The batch stream declares its schema from the first page, because DuckDB
needs it before the first row. Later pages are conformed to it: a field a
page lacks is null, a null-typed column takes the declared type, a value
that fits the declared type is cast to it, a column declared as text takes
any value as text (objects and lists as JSON), and a field that appears only
after the first page is dropped with a warning in the log. A field that is
null on every record of the first page is declared as text, since it could
hold anything. Within one page, a field whose records disagree on its type
(``1`` here, ``"one"`` there) becomes text. docs/connectors-http.md tells
users the same.

429 and 5xx answers, timeouts and dropped connections are retried inside the
connector with exponential backoff, honouring ``Retry-After``, so a long walk
resumes at the page that failed; when ``max_retries`` is spent the error is
a transient ``ConnectorError`` and the engine's retry policy takes over.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import io
import json
import random
import ssl
import threading
import time
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from queue import Full, Queue
from typing import Any, TypeVar

import httpx
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from etl_nb._logging import get_logger
from etl_nb._masking import remember
from etl_nb._secrets import resolve
from etl_nb.connectors.base import Connector, PendingWrite, ReadRequest, WriteRequest
from etl_nb.errors import ConnectorError, MissingParameter, SpecError
from etl_nb.spec import ANY_PARAMETER, PARAMETER, ExtractStep, LoadStep

CONNECT_KEYS = ("headers", "auth", "timeout", "max_retries", "params")
AUTH_TYPES: dict[str, tuple[str, ...]] = {
    "bearer": ("token",),
    "basic": ("username", "password"),
    "header": ("name", "value"),
}
# Each pagination style with its keys and their defaults; ``max_pages`` fits every style.
PAGINATE_STYLES: dict[str, dict[str, Any]] = {
    "page": {"param": "page", "size_param": "per_page", "size": 100, "start": 1},
    "offset": {"param": "offset", "size_param": "limit", "size": 100, "start": 0},
    "cursor": {"param": "cursor", "next": None},
    "link": {},
    "none": {},
}
PAGINATE_EXAMPLES = (
    "{type: page, param: page, size_param: per_page, size: 100, start: 1}, "
    "{type: offset, param: offset, size_param: limit, size: 100}, "
    "{type: cursor, param: cursor, next: meta.next_cursor}, {type: link}, {type: none}"
)
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 3
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 30.0
# A Retry-After longer than this is not waited out inside a run.
RETRY_AFTER_MAX = 120.0
SNIPPET = 80
# Parse pages with Polars when it can (see _fast_page); False forces the json path.
FAST_JSON = True
# Pages fetched ahead of the one DuckDB is storing.
PREFETCH = 2

T = TypeVar("T")


@dataclass(frozen=True)
class Paging:
    """A validated ``paginate:`` body."""

    style: str
    param: str | None = None
    size_param: str | None = None
    size: int | None = None
    start: int = 0
    next: str | None = None
    max_pages: int | None = None


class HttpConnector(Connector):
    """A REST API answering JSON: a source only."""

    kind = "http"

    client: httpx.Client | None = None

    def open(self) -> None:
        """Validate the connect body, resolve its ``${VAR}`` secrets and create the HTTP client."""
        name = self.spec.name
        options = dict(self.spec.options)
        unknown = sorted(str(k) for k in set(options) - set(CONNECT_KEYS))
        if unknown:
            raise SpecError(
                f"Unknown key '{unknown[0]}' in connection '{name}' (a REST API). "
                f"Keys: url, {', '.join(CONNECT_KEYS)}.",
                step=name,
            )
        base_url = self._secret(self.spec.url)
        headers = {"Accept": "application/json"}
        for key, value in _mapping(options.get("headers"), "headers", name).items():
            headers[str(key)] = self._secret(str(value), remember_literal=_sensitive(str(key)))
        params = {
            str(k): self._secret(str(v), remember_literal=_sensitive(str(k)))
            for k, v in _mapping(options.get("params"), "params", name).items()
        }
        auth = self._auth(options.get("auth"), headers)
        self.timeout = _number(options.get("timeout", DEFAULT_TIMEOUT), "timeout", name, minimum=0.001)
        self.max_retries = int(
            _number(options.get("max_retries", DEFAULT_MAX_RETRIES), "max_retries", name, minimum=0)
        )
        self.log = get_logger(connection=name)
        self.params = params
        self.client = httpx.Client(
            base_url=base_url,
            headers=headers,
            auth=auth,
            timeout=self.timeout,
            follow_redirects=True,
            verify=_ssl_context(),
        )

    def close(self) -> None:
        """Close the HTTP client and its pooled connections."""
        if self.client is not None:
            self.client.close()
            self.client = None

    def _secret(self, text: str, *, remember_literal: bool = False) -> str:
        value = resolve(text, self.context.env_file, connection=self.spec.name)
        if remember_literal:  # a token written in clear is still a secret
            remember(value)
        return value

    def _auth(self, auth: Any, headers: dict[str, str]) -> httpx.Auth | None:
        name = self.spec.name
        if auth is None:
            return None
        kinds = ", ".join(AUTH_TYPES)
        if not isinstance(auth, Mapping) or auth.get("type") not in AUTH_TYPES:
            raise SpecError(
                f"Connection '{name}': 'auth:' needs a type, one of {kinds}: "
                "{type: bearer, token: ${API_TOKEN}}, {type: basic, username: ..., password: ...} "
                "or {type: header, name: X-API-Key, value: ${API_KEY}}.",
                step=name,
            )
        kind = str(auth["type"])
        needed = AUTH_TYPES[kind]
        missing = [k for k in needed if auth.get(k) in (None, "")]
        extra = sorted(str(k) for k in set(auth) - {"type", *needed})
        if missing or extra:
            problem = f"lacks '{missing[0]}'" if missing else f"has an unknown key '{extra[0]}'"
            raise SpecError(
                f"Connection '{name}': auth of type {kind} {problem}; it takes {', '.join(needed)}.",
                step=name,
            )
        values = {k: self._secret(str(auth[k]), remember_literal=k != "username") for k in needed}
        if kind == "bearer":
            headers["Authorization"] = f"Bearer {values['token']}"
            return None
        if kind == "header":
            headers[values["name"]] = values["value"]
            return None
        return httpx.BasicAuth(values["username"], values["password"])

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
        paging(extract)

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
        are fetched as the reader is consumed.
        """
        extract = request.extract
        self.check_extract(extract)
        pages = _prefetched(
            self._pages(extract, paging(extract), bind_params(extract, request.params)),
            name=f"etl_nb-http-{extract.name}",
        )
        first = next(pages, None)
        if first is None:
            pages.close()
            return pa.RecordBatchReader.from_batches(_empty_schema(extract), iter(()))
        first_batch = _as_batch(first[1])
        schema = declared_schema(first_batch.schema)
        del first

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                yield self._finish(extract, request.since, 1, first_batch, schema)
                for number, page in pages:
                    yield self._finish(extract, request.since, number, _as_batch(page), schema)
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
        self, extract: ExtractStep, paging: Paging, params: dict[str, Any]
    ) -> Generator[tuple[int, list[Any] | pa.RecordBatch]]:
        """Each page's records (with the page's number), until the API runs out or max_pages.

        A page comes as a record batch when Polars could parse it straight from
        the bytes, else as the list of JSON records.
        """
        url: str = extract.path or ""
        number = 0
        position = paging.start
        cursor: Any = None
        seen_links: set[str] = set()
        while paging.max_pages is None or number < paging.max_pages:
            query = dict(params)
            if paging.style in ("page", "offset"):
                assert paging.param is not None
                query[paging.param] = position
                if paging.size_param:
                    query[paging.size_param] = paging.size
            elif paging.style == "cursor" and cursor is not None:
                assert paging.param is not None
                query[paging.param] = cursor
            number += 1
            response = self._get(extract, url, query, number)
            page: list[Any] | pa.RecordBatch | None = None
            if paging.style != "cursor":  # cursors are read from the body, so it is parsed in Python
                page = _fast_page(extract, response, number)
            if page is None:
                body = _json(extract, response, number)
                page = find_records(extract, body, number)
            count = page.num_rows if isinstance(page, pa.RecordBatch) else len(page)
            if not count:
                return
            yield number, page
            if paging.style == "none":
                return
            if paging.style == "page":
                position += 1
            elif paging.style == "offset":
                position += count
            elif paging.style == "cursor":
                assert paging.next is not None
                following = _dig(body, paging.next)
                if following is None or following == "":
                    return
                if following == cursor:
                    raise ConnectorError(
                        f"Extract '{extract.name}': page {number} gives the same cursor as the page "
                        f"before ({following!r}), so paging would never end. Check 'next: {paging.next}'.",
                        step=extract.name,
                    )
                cursor = following
            else:  # link
                link = response.links.get("next", {}).get("url")
                if not link:
                    return
                url = str(response.url.join(link))
                if url in seen_links:
                    raise ConnectorError(
                        f"Extract '{extract.name}': the Link header of page {number} points back to "
                        f"{url}, so paging would never end.",
                        step=extract.name,
                    )
                seen_links.add(url)
                params = {}  # the next link carries its own query

    def _get(self, extract: ExtractStep, url: str, params: dict[str, Any], number: int) -> httpx.Response:
        """GET one page, retrying 429, 5xx, timeouts and dropped connections with backoff."""
        if self.client is None:
            raise ConnectorError(f"Connection '{self.spec.name}' is closed.", step=extract.name)
        step = extract.name
        # httpx replaces a URL's query with params=, so merge them: the path's own query (or a
        # next link's), then the connection's params:, then the extract's.
        query = httpx.QueryParams(httpx.URL(url).params).merge(self.params).merge(params)
        try:
            request = self.client.build_request("GET", url, params=query or None)
        except httpx.InvalidURL as exc:
            raise ConnectorError(
                f"Extract '{step}': '{url}' is not a valid URL ({exc}). Check 'path:' and the URL "
                f"of connection '{self.spec.name}'.",
                step=step,
            ) from None
        where = str(request.url)
        attempt = 0
        while True:
            wait: float | None = None
            try:
                response = self.client.send(request)
            except httpx.TimeoutException:
                problem = (
                    f"timed out after {self.timeout:g}s waiting for page {number} of "
                    f"{where}. Raise 'timeout:' in connection '{self.spec.name}' "
                    "or check that the API is healthy"
                )
            except httpx.ConnectError as exc:
                # A refused connection or an unknown host is rarely fixed by waiting here:
                # let the engine's retry policy decide.
                raise ConnectorError(
                    f"Extract '{step}': cannot reach {where} ({_reason(exc)}). Check the URL "
                    f"of connection '{self.spec.name}' and that the API is up.",
                    step=step,
                    transient=True,
                ) from None
            except httpx.TransportError as exc:
                problem = f"lost the connection to {where} on page {number} ({_reason(exc)})"
            else:
                status = response.status_code
                if status < 400:
                    return response
                if status != 429 and status < 500:
                    raise _client_error(extract, response, number)
                wait = _retry_after(response)
                problem = f"{where} answered {status} {response.reason_phrase} on page {number}"
                response.close()
            if attempt >= self.max_retries:
                tries = f"{attempt + 1} tries" if attempt else "1 try"
                raise ConnectorError(
                    f"Extract '{step}': {problem} ({tries}, max_retries: {self.max_retries}).",
                    step=step,
                    transient=True,
                )
            if wait is not None and wait > RETRY_AFTER_MAX:
                raise ConnectorError(
                    f"Extract '{step}': {problem} and asks to wait {wait:.0f}s (Retry-After), longer than "
                    f"etl_nb waits inside a run ({RETRY_AFTER_MAX:.0f}s). Run it again later.",
                    step=step,
                    transient=True,
                )
            if wait is None:
                wait = min(BACKOFF_MAX, BACKOFF_INITIAL * 2**attempt) * (0.5 + random.random() / 2)
            attempt += 1
            self.log.warning(
                "retrying a page", step=step, attempt=attempt, wait=round(wait, 3), problem=problem
            )
            time.sleep(wait)


def _prefetched(pages: Generator[T], *, name: str, depth: int = PREFETCH) -> Generator[T]:
    """``pages`` fetched by a thread that runs at most ``depth`` pages ahead.

    The next page downloads and parses while DuckDB stores this one (its C++
    side lets go of the GIL), so fetching and storing overlap; the queue
    bounds memory to ``depth`` pages. An error in the thread is raised here,
    at the page where it happened; closing this generator stops the thread.
    """
    queue: Queue[tuple[str, Any]] = Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.05)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for page in pages:
                if not put(("page", page)):
                    return
            put(("end", None))
        except BaseException as exc:
            put(("error", exc))
        finally:
            pages.close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            kind, item = queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


@cache
def _ssl_context() -> ssl.SSLContext:
    """One verifying SSL context per process: loading the CA bundle costs ~50 ms per client."""
    return httpx.create_ssl_context()


# --- extract bodies -----------------------------------------------------------------------


def _no_loads(load: LoadStep) -> SpecError:
    return SpecError(
        f"Load '{load.step}' targets '{load.to}', a REST API: etl_nb reads from APIs but does not "
        "write to them. Load into a database or a folder instead.",
        step=load.step,
    )


def paging(extract: ExtractStep) -> Paging:
    """The extract's ``paginate:`` body, validated; ``SpecError`` naming the valid styles."""
    name = extract.name
    body = dict(extract.paginate or {"type": "none"})
    style = body.pop("type", None)
    styles = ", ".join(PAGINATE_STYLES)
    if style not in PAGINATE_STYLES:
        what = "needs a 'type:'" if style is None else f"has an unknown type '{style}'"
        raise SpecError(
            f"Extract '{name}': 'paginate:' {what}. Styles: {styles}, e.g. {PAGINATE_EXAMPLES}.",
            step=name,
        )
    defaults = PAGINATE_STYLES[style]
    allowed = ("type", *defaults, "max_pages")
    unknown = sorted(str(k) for k in set(body) - set(allowed))
    if unknown:
        raise SpecError(
            f"Extract '{name}': 'paginate:' of type {style} has an unknown key '{unknown[0]}'; "
            f"it takes {', '.join(allowed)}.",
            step=name,
        )
    values = {**defaults, **body}
    for key in ("size", "start", "max_pages"):
        value = values.get(key)
        smallest = 0 if key == "start" else 1
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < smallest):
            raise SpecError(
                f"Extract '{name}': 'paginate: {key}' must be a whole number of at least {smallest}, "
                f"not {value!r}.",
                step=name,
            )
    for key in ("param", "size_param", "next"):
        value = values.get(key)
        if key in defaults and value is not None and (not isinstance(value, str) or not value):
            raise SpecError(f"Extract '{name}': 'paginate: {key}' must be a name, not {value!r}.", step=name)
    if style in ("page", "offset", "cursor") and not values.get("param"):
        raise SpecError(f"Extract '{name}': 'paginate:' of type {style} needs 'param:'.", step=name)
    if style == "cursor" and not values.get("next"):
        raise SpecError(
            f"Extract '{name}': cursor paging needs 'next:', the dot path to the next cursor in each "
            "answer, e.g. {type: cursor, param: cursor, next: meta.next_cursor}.",
            step=name,
        )
    return Paging(
        style=style,
        param=values.get("param"),
        size_param=values.get("size_param"),
        size=values.get("size"),
        start=int(values.get("start") or 0),
        next=values.get("next"),
        max_pages=values.get("max_pages"),
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


def _looks_html(response: httpx.Response) -> bool:
    content_type = response.headers.get("content-type", "")
    start = response.content.lstrip()[:15].lower()
    return "html" in content_type.lower() or start.startswith((b"<!doctype html", b"<html"))


def _fast_page(extract: ExtractStep, response: httpx.Response, number: int) -> pa.RecordBatch | None:
    """The page's records parsed by Polars straight from the bytes, or None for the ``json`` path.

    Polars parses JSON in Rust, about twice as fast as ``json`` plus
    ``pa.array`` and without holding the GIL. Anything unusual (a missing
    ``records:`` path, a list of plain values, a parse error) returns None, and
    the ``json`` path then reads the page or says what is wrong with it.
    """
    if not FAST_JSON or _looks_html(response):
        return None
    content = response.content
    try:
        frame = pl.read_json(io.BytesIO(content), infer_schema_length=None)
        if extract.records is None:
            if content.lstrip()[:1] != b"[":
                return None
        else:
            parts = extract.records.split(".")
            if frame.height != 1 or parts[0] not in frame.columns:
                return None
            expression = pl.col(parts[0])
            for part in parts[1:]:
                expression = expression.struct.field(part)
            column = frame.select(expression.alias("records")).to_series()
            if isinstance(column.dtype, pl.Null):
                return pa.RecordBatch.from_pylist([])
            if not isinstance(column.dtype, pl.List):
                return None
            inner = column[0]
            if isinstance(inner.dtype, pl.Null) or len(inner) == 0:
                return pa.RecordBatch.from_pylist([])
            if not isinstance(inner.dtype, pl.Struct):
                return None
            frame = inner.struct.unnest()
        if not frame.width or any(isinstance(t, pl.Struct) and not t.fields for t in frame.dtypes):
            return None
        table = frame.to_arrow()
        table = table.cast(pa.schema([f.with_type(_regular_type(f.type)) for f in table.schema]))
    except Exception:  # anything Polars cannot read the json path reads or explains
        return None
    batches = table.combine_chunks().to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)


def _regular_type(type_: pa.DataType) -> pa.DataType:
    """The type the ``json`` path makes for the same values (Polars uses large and view types)."""
    if pa.types.is_large_string(type_) or pa.types.is_string_view(type_):
        return pa.string()
    if pa.types.is_large_list(type_) or pa.types.is_list_view(type_) or pa.types.is_list(type_):
        return pa.list_(_regular_type(type_.value_type))
    if pa.types.is_struct(type_):
        return pa.struct([f.with_type(_regular_type(f.type)) for f in type_])
    return type_


def _as_batch(page: list[Any] | pa.RecordBatch) -> pa.RecordBatch:
    return page if isinstance(page, pa.RecordBatch) else records_to_batch(page)


def _json(extract: ExtractStep, response: httpx.Response, number: int) -> Any:
    content_type = response.headers.get("content-type", "")
    looks_html = _looks_html(response)
    if not looks_html:
        try:
            return json.loads(response.content)
        except ValueError:
            pass
    kind = "HTML" if looks_html else f"something that is not JSON ({content_type or 'no content type'})"
    raise ConnectorError(
        f"Extract '{extract.name}': {response.request.url} answered {kind} on page {number}, not JSON: "
        f"{_snippet(response)}. Check 'path:' and the connection's URL (a web page or a login page "
        "answers HTML).",
        step=extract.name,
    )


def find_records(extract: ExtractStep, body: Any, number: int) -> list[Any]:
    """The list of records in one page's JSON body, found at ``records:``."""
    name = extract.name
    if extract.records is None:
        if isinstance(body, list):
            return body
        if isinstance(body, dict):
            lists = [k for k, v in body.items() if isinstance(v, list)]
            hint = f" ('{lists[0]}' holds a list)" if lists else ""
            raise SpecError(
                f"Extract '{name}': page {number} is a JSON object with keys {_keys(body)}, not a list of "
                f"records. Set 'records:' to the key that holds them{hint}.",
                step=name,
            )
        return [] if body is None else [body]
    node = body
    walked: list[str] = []
    for part in extract.records.split("."):
        if not isinstance(node, dict) or part not in node:
            where = f"'{'.'.join(walked)}'" if walked else "the answer"
            has = (
                f"it has keys {_keys(node)}"
                if isinstance(node, dict)
                else f"it is a JSON {type(node).__name__}"
            )
            raise SpecError(
                f"Extract '{name}': page {number} has no '{extract.records}' ({where} has no '{part}'; "
                f"{has}). Check 'records:'.",
                step=name,
            )
        node = node[part]
        walked.append(part)
    if node is None:
        return []
    if isinstance(node, list):
        return node
    if isinstance(node, dict):
        return [node]
    raise SpecError(
        f"Extract '{name}': '{extract.records}' on page {number} is a JSON {type(node).__name__}, not a "
        "list of records. Check 'records:'.",
        step=name,
    )


def _dig(body: Any, path: str) -> Any:
    node = body
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _keys(node: Mapping[str, Any]) -> str:
    keys = [str(k) for k in node]
    shown = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")
    return shown or "(none)"


def _snippet(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    if not text:
        return "an empty body"
    return repr(text[:SNIPPET] + ("..." if len(text) > SNIPPET else ""))


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text or exc.__class__.__name__


def _client_error(extract: ExtractStep, response: httpx.Response, number: int) -> ConnectorError:
    status = response.status_code
    url = response.request.url
    step = extract.name
    if status in (401, 403):
        fix = (
            "Check the connection's 'auth:' (token, username and password, or header) and that the "
            "variable its ${VAR} names holds a valid secret"
        )
        if status == 403:
            fix += ", with access to this path"
        return ConnectorError(
            f"Extract '{step}': {url} answered {status} {response.reason_phrase}. {fix}.", step=step
        )
    if status == 404:
        return ConnectorError(
            f"Extract '{step}': {url} answered 404 Not Found on page {number}. Check 'path:' "
            "and the connection's base URL.",
            step=step,
        )
    return ConnectorError(
        f"Extract '{step}': {url} answered {status} {response.reason_phrase} on page {number}: "
        f"{_snippet(response)}. Check 'params:' and 'path:'.",
        step=step,
    )


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds the answer asks to wait (``Retry-After`` as seconds or an HTTP date), or None."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def _sensitive(header: str) -> bool:
    # Credentials written in clear (a header, a query parameter such as api_key) are masked
    # like ${VAR} values; an API version is not.
    name = header.lower()
    return any(word in name for word in ("auth", "token", "key", "secret", "cookie", "password"))


def _mapping(value: Any, key: str, connection: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(
            f"Connection '{connection}': '{key}:' must be 'name: value' pairs, not {value!r}.",
            step=connection,
        )
    return value


def _number(value: Any, key: str, connection: str, *, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise SpecError(
            f"Connection '{connection}': '{key}:' must be a number of at least {minimum:g}, not {value!r}.",
            step=connection,
        )
    return float(value)


# --- JSON records to Arrow ----------------------------------------------------------------


def records_to_batch(records: list[Any]) -> pa.RecordBatch:
    """One page's records as a record batch: objects become columns, nested ones structs and lists.

    The union of the records' keys makes the columns (a key missing in a
    record is null). A field whose records disagree on its type becomes text
    (JSON for objects and lists). Records that are not objects make one
    column, ``value``.
    """
    try:
        array = pa.array(records)
    except (pa.ArrowException, ValueError, TypeError, OverflowError):
        array = _mixed_records(records)
    if pa.types.is_struct(array.type) and array.type.num_fields > 0:
        return pa.RecordBatch.from_struct_array(array)
    return pa.RecordBatch.from_arrays([array], names=["value"])


def _mixed_records(records: list[Any]) -> pa.Array:
    objects = [r if isinstance(r, dict) else None for r in records]
    if not any(objects):
        return _column(list(records))
    keys = dict.fromkeys(k for r in records if isinstance(r, dict) for k in r)
    columns = [_column([r.get(k) if r is not None else None for r in objects]) for k in keys]
    return pa.StructArray.from_arrays(columns, names=[str(k) for k in keys])


def _column(values: list[Any]) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowException, ValueError, TypeError, OverflowError):
        return pa.array([_as_text(v) for v in values], pa.string())


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def declared_type(type_: pa.DataType) -> pa.DataType:
    """The column type to declare for a type seen on the first page.

    Null (never seen a value) and empty objects become text, which can hold
    whatever later pages bring; structs and lists are declared field by field.
    """
    if pa.types.is_null(type_):
        return pa.string()
    if pa.types.is_struct(type_):
        if type_.num_fields == 0:
            return pa.string()
        return pa.struct([f.with_type(declared_type(f.type)) for f in type_])
    if pa.types.is_list(type_):
        return pa.list_(type_.value_field.with_type(declared_type(type_.value_type)))
    return type_


def declared_schema(schema: pa.Schema) -> pa.Schema:
    """The schema declared for the whole stream, from the first page's."""
    return pa.schema([f.with_type(declared_type(f.type)) for f in schema])


def _empty_schema(extract: ExtractStep) -> pa.Schema:
    # DuckDB needs a column even for no rows; an incremental extract needs its column.
    return pa.schema([(extract.incremental or "value", pa.string())])


def conform_batch(batch: pa.RecordBatch, schema: pa.Schema, notes: list[str]) -> pa.RecordBatch:
    """``batch`` with exactly the columns and types of ``schema``; what did not fit goes to ``notes``."""
    if batch.schema.equals(schema):
        return batch
    columns = []
    for field in schema:
        index = batch.schema.get_field_index(field.name)
        if index < 0:
            columns.append(pa.nulls(batch.num_rows, field.type))
        else:
            columns.append(conform(batch.column(index), field.type, field.name, notes))
    extra = [n for n in batch.schema.names if schema.get_field_index(n) < 0]
    if extra:
        notes.append(f"dropped fields not on the first page: {', '.join(extra)}")
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def conform(array: pa.Array, target: pa.DataType, path: str, notes: list[str]) -> pa.Array:
    """``array`` as type ``target``: cast, filled, or as text; values that cannot fit become null."""
    source = array.type
    if source.equals(target):
        return array
    if pa.types.is_null(source):
        return pa.nulls(len(array), target)
    if pa.types.is_string(target):
        if pa.types.is_nested(source):
            return pa.array([_as_text(v) for v in array.to_pylist()], target)
        try:
            return pc.cast(array, target)
        except (pa.ArrowException, ValueError, TypeError):
            return pa.array([_as_text(v) for v in array.to_pylist()], target)
    if pa.types.is_struct(target) and pa.types.is_struct(source):
        children = []
        for field in target:
            index = source.get_field_index(field.name)
            child = array.field(index) if index >= 0 else pa.nulls(len(array), field.type)
            children.append(conform(child, field.type, f"{path}.{field.name}", notes))
        extra = [f.name for f in source if target.get_field_index(f.name) < 0]
        if extra:
            notes.append(f"dropped fields of '{path}' not on the first page: {', '.join(extra)}")
        return pa.StructArray.from_arrays(children, fields=list(target), mask=array.is_null())
    if pa.types.is_list(target) and pa.types.is_list(source):
        values = conform(array.values, target.value_type, f"{path}[]", notes)
        return pa.ListArray.from_arrays(array.offsets, values, type=target, mask=array.is_null())
    try:
        return pc.cast(array, target, safe=True)
    except (pa.ArrowException, ValueError, TypeError):
        pass
    kept: list[Any] = []
    lost = 0
    for value in array.to_pylist():
        try:
            kept.append(pc.cast(pa.array([value]), target, safe=True)[0].as_py())
        except (pa.ArrowException, ValueError, TypeError):
            kept.append(None)
            lost += value is not None
    if lost:
        notes.append(f"{lost} value(s) of '{path}' do not fit its first-page type {target} and became null")
    return pa.array(kept, target)


def newer_than(batch: pa.RecordBatch, column: str, since: Any, step: str) -> pa.RecordBatch:
    """The rows of ``batch`` whose ``column`` is greater than ``since`` (an incremental run)."""
    index = batch.schema.get_field_index(column)
    if index < 0:
        return batch  # the engine says the column is missing, once, after the extract
    values = batch.column(index)
    try:
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            mark: Any = since.isoformat() if isinstance(since, dt.date | dt.time) else str(since)
            bound = pa.scalar(mark, values.type)
        else:
            bound = pa.scalar(since).cast(values.type)
        return batch.filter(pc.greater(values, bound))
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise ConnectorError(
            f"Extract '{step}': cannot compare '{column}' ({values.type}) with the last run's mark "
            f"{since!r} ({exc}). Check --incremental.",
            step=step,
        ) from None
