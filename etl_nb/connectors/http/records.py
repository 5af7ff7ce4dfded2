"""JSON answers to Arrow record batches: one batch per page, one schema per stream.

A page is parsed by Polars straight from the bytes when it can (Rust, no
Python objects); anything unusual takes the ``json`` module's path, which
also words the errors. ``records:`` finds the list of records in a page.

The stream declares its schema from the first page, because DuckDB needs it
before the first row; ``conform_batch`` makes every later page fit it: a
field a page lacks is null, a null-typed column takes the declared type, a
value that fits the declared type is cast to it, a column declared as text
takes any value as text (objects and lists as JSON), and a field that
appears only after the first page is dropped, with a note. A field that is
null on every record of the first page is declared as text, since it could
hold anything. Within one page, a field whose records disagree on its type
(``1`` here, ``"one"`` there) becomes text. docs/connectors-http.md tells
users the same.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Mapping
from typing import Any, TypeAlias

import httpx
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from etl_nb.connectors.http.client import snippet
from etl_nb.errors import ConnectorError, SpecError
from etl_nb.spec import ExtractStep

# Parse pages with Polars when it can (see _fast_page); False forces the json path.
FAST_JSON = True

# A page's records: a record batch when Polars read the bytes, else the JSON list.
Records: TypeAlias = list[Any] | pa.RecordBatch


def read_page(
    extract: ExtractStep, response: httpx.Response, number: int, *, keep_body: bool = False
) -> tuple[Records, Any]:
    """One answer's records and, when parsed in Python, its JSON body.

    The records come as a record batch when Polars could parse the bytes,
    else as the list of JSON records. ``keep_body`` asks for the body (a
    cursor lives in it), so the page is parsed in Python.
    """
    if not keep_body:
        batch = _fast_page(extract, response, number)
        if batch is not None:
            return batch, None
    body = _json(extract, response, number)
    return find_records(extract, body, number), body


def count(records: Records) -> int:
    """How many records a page holds."""
    return records.num_rows if isinstance(records, pa.RecordBatch) else len(records)


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


def as_batch(page: Records) -> pa.RecordBatch:
    """A page's records as one record batch."""
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
        f"{snippet(response)}. Check 'path:' and the connection's URL (a web page or a login page "
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


def dig(body: Any, path: str) -> Any:
    """The value at the dot ``path`` in a JSON body (``meta.next_cursor``), or None if it is not there."""
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


def empty_schema(extract: ExtractStep) -> pa.Schema:
    """The schema of an extract that received no records."""
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
