"""Columns and values: DuckDB types to target columns, target columns to families, driver rows to Arrow.

A step's column travels as a ``ColumnPlan``: the DuckDB expression that feeds
the batches (``wire``), the staging column's SQLAlchemy type (``stage``) and
its ``family``, which decides whether it fits an existing target column.
Which plan a DuckDB type gets is the dialect's choice (``dialects.py``); the
rules here are the same for every database.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from duckdb.sqltypes import DuckDBPyType

from etl_nb.engine.sqltext import quote
from etl_nb.errors import ConnectorError
from etl_nb.spec import LoadStep

SaType = sa.types.TypeEngine[Any]

# Type families decide whether a step's column can go into an existing target column.
# The target's family (key) accepts the step's families (values); anything else is a conflict.
ACCEPTS: dict[str, set[str]] = {
    "integer": {"integer", "boolean"},
    "decimal": {"integer", "decimal"},
    "float": {"integer", "decimal", "float"},
    "text": {"text", "uuid", "json"},
    "boolean": {"boolean"},
    "date": {"date"},
    "timestamp": {"timestamp", "date"},
    "timestamptz": {"timestamptz"},
    "time": {"time"},
    "binary": {"binary"},
    "json": {"json", "text"},
    "uuid": {"uuid", "text"},
    "array": {"array"},
    "interval": {"interval", "text"},
}
# The step's family that is cast explicitly on the way into a target of another family.
CAST_INTO = {("uuid", "text"), ("json", "text"), ("interval", "text")}

# The DuckDB type a column of NULLs takes to fit a target column of each family.
NULLS_AS = {
    "integer": "BIGINT",
    "decimal": "DECIMAL(38, 10)",
    "float": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "time": "TIME",
    "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMPTZ",
    "uuid": "UUID",
    "json": "JSON",
    "binary": "BLOB",
}

# DuckDB types that every database holds alike: type id -> (cast on the wire, staging type, family).
SIMPLE_TYPES: dict[str, tuple[str | None, Callable[[], SaType], str]] = {
    "boolean": (None, sa.Boolean, "boolean"),
    "tinyint": ("SMALLINT", sa.SmallInteger, "integer"),
    "utinyint": ("SMALLINT", sa.SmallInteger, "integer"),
    "smallint": (None, sa.SmallInteger, "integer"),
    "usmallint": ("INTEGER", sa.Integer, "integer"),
    "integer": (None, sa.Integer, "integer"),
    "uinteger": ("BIGINT", sa.BigInteger, "integer"),
    "bigint": (None, sa.BigInteger, "integer"),
    "ubigint": ("DECIMAL(38, 0)", lambda: sa.Numeric(38, 0), "decimal"),
    "hugeint": ("DECIMAL(38, 0)", lambda: sa.Numeric(38, 0), "decimal"),
    "uhugeint": ("DECIMAL(38, 0)", lambda: sa.Numeric(38, 0), "decimal"),
    "float": (None, sa.REAL, "float"),
    "double": (None, sa.Double, "float"),
    "date": (None, sa.Date, "date"),
    "time": (None, sa.Time, "time"),
}


@dataclass(frozen=True)
class ColumnPlan:
    """How one column of the step travels into the target.

    ``wire`` is the DuckDB expression that feeds the batches, ``stage`` the
    SQLAlchemy type of the staging column, ``family`` what kind of value it is
    (to compare with an existing target column).
    """

    name: str
    duck_type: str
    wire: str
    stage: SaType
    family: str


@dataclass(frozen=True)
class StepColumn:
    """A column of the step's rows, as a dialect sees it when it plans the column."""

    name: str
    dtype: DuckDBPyType
    key: bool = False

    @property
    def sql(self) -> str:
        """The column quoted for DuckDB."""
        return quote(self.name)

    @property
    def kind(self) -> str:
        """DuckDB's type id, with JSON and every timestamp precision named alike."""
        tid = str(self.dtype.id)
        if str(self.dtype) == "JSON":
            return "json"
        if tid.startswith("timestamp") and tid != "timestamp with time zone":
            return "timestamp"
        return tid

    def cast(self, duck_type: str) -> str:
        """The column cast to ``duck_type`` in DuckDB."""
        return f"CAST({self.sql} AS {duck_type})"

    def plan(self, wire: str, stage: SaType, family: str) -> ColumnPlan:
        """The plan that sends this column as ``wire`` into a ``stage`` column."""
        return ColumnPlan(self.name, str(self.dtype), wire, stage, family)


@dataclass(frozen=True)
class LoadShape:
    """One load as a dialect writes its statements: where the rows are staged and where they go."""

    schema: str | None
    table: str
    staging: str
    mode: str
    exists: bool
    plans: list[ColumnPlan]
    keys: list[str]
    target_columns: Mapping[str, SaType]
    few_rows: bool = False  # known to be a small load when the staging table is made (PostgreSQL)

    @property
    def values(self) -> list[ColumnPlan]:
        """The columns a merge updates: all but the key."""
        return [p for p in self.plans if p.name not in self.keys]

    @property
    def added(self) -> list[ColumnPlan]:
        """The step's columns the existing target does not have yet."""
        return [p for p in self.plans if p.name not in self.target_columns]


_FAMILIES: list[tuple[type[Any], str]] = [
    (sa.ARRAY, "array"),
    (sa.JSON, "json"),
    (sa.Uuid, "uuid"),
    (sa.Boolean, "boolean"),
    (sa.Float, "float"),
    (sa.Integer, "integer"),
    (sa.Numeric, "decimal"),
    (sa.Interval, "interval"),
    (sa.DateTime, "timestamp"),
    (sa.Date, "date"),
    (sa.Time, "time"),
    (sa.LargeBinary, "binary"),
    (sa.String, "text"),
]


def family_of(sa_type: SaType) -> str | None:
    """The family of a reflected target column type; None when it is not one we know."""
    for kind, family in _FAMILIES:
        if isinstance(sa_type, kind):
            if family == "timestamp" and getattr(sa_type, "timezone", False):
                return "timestamptz"
            return family
    name = type(sa_type).__name__.upper()
    if "INTERVAL" in name:
        return "interval"
    if "BYTEA" in name or "BLOB" in name or "BINARY" in name:
        return "binary"
    return None


def describe_type(plan: ColumnPlan) -> str:
    """The step's type as the user knows it (DuckDB's name)."""
    return plan.duck_type.lower()


def check_types(load: LoadStep, plans: list[ColumnPlan], target_columns: Mapping[str, SaType]) -> None:
    """Each step column that the target has must fit the target column's type."""
    for plan in plans:
        target_type = target_columns.get(plan.name)
        if target_type is None:
            continue
        family = family_of(target_type)
        if family is None or plan.family in ACCEPTS.get(family, {family}):
            continue
        raise ConnectorError(
            f"Cannot load step '{load.step}' into '{load.table}': column '{plan.name}' is "
            f"{str(target_type).lower()} in the table but {describe_type(plan)} in the step. Cast it in a "
            "transform to the table's type, or use --mode replace to recreate the table.",
            step=load.step,
        )


# --------------------------------------------------------------------------------------
# Driver rows to Arrow (databases without native Arrow)
# --------------------------------------------------------------------------------------


def rows_to_batch(
    keys: list[str], rows: Sequence[Sequence[Any]], schema: pa.Schema | None, description: list[Any]
) -> pa.RecordBatch:
    """One batch of driver rows as an Arrow record batch (types from the first batch)."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in keys]
    arrays = []
    for index, (name, values) in enumerate(zip(keys, columns, strict=True)):
        wanted = schema.field(index).type if schema is not None else _described_type(description, index)
        arrays.append(_array(name, values, wanted))
    return pa.RecordBatch.from_arrays(arrays, names=keys)


def _array(name: str, values: Sequence[Any], wanted: pa.DataType | None) -> pa.Array:
    try:
        return pa.array(values, type=wanted) if wanted is not None else pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        pass
    try:
        array = pa.array(values)
        return array.cast(wanted) if wanted is not None else array
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        raise ConnectorError(
            f"Column '{name}' holds values of another type than in the first rows "
            f"({wanted}). Cast it in the query so that every row has one type."
        ) from None


def _described_type(description: list[Any], index: int) -> Any:
    """An exact decimal type when the driver tells precision and scale (MySQL DECIMAL)."""
    if index >= len(description):
        return None
    entry = description[index]
    if len(entry) < 6:
        return None
    precision, scale = entry[4], entry[5]
    type_code = entry[1]
    # PyMySQL: 246 is NEWDECIMAL, 0 DECIMAL; its precision counts the sign and point.
    if type_code in (0, 246) and isinstance(precision, int) and isinstance(scale, int):
        digits = max(1, precision - (1 if scale else 0) - 1)
        digits = max(digits, scale)
        return pa.decimal128(min(digits, 38), scale) if digits <= 38 else pa.decimal256(digits, scale)
    return None


def untyped(batches: list[pa.RecordBatch]) -> bool:
    """Whether some column is NULL in every one of ``batches`` (so its type is not known yet)."""
    return any(
        all(pa.types.is_null(b.schema.field(i).type) for b in batches) for i in range(batches[0].num_columns)
    )


def settled_schema(batches: list[pa.RecordBatch], *, more: bool) -> pa.Schema:
    """Each column's first real type among ``batches``.

    A column still NULL everywhere stays NULL when the rows ended (a load gives
    it the target's type); when more rows may follow, it becomes text, which
    any later value converts to.
    """
    fields = []
    for i, field_ in enumerate(batches[0].schema):
        typed = next(
            (b.schema.field(i).type for b in batches if not pa.types.is_null(b.schema.field(i).type)), None
        )
        fields.append(field_.with_type(typed if typed is not None else (pa.string() if more else pa.null())))
    return pa.schema(fields)
