"""Files in a folder: CSV, Parquet, JSON and NDJSON in; Parquet, CSV and JSON out.

DuckDB reads the files itself (``scan``), so a file extract costs nothing
until a later step reads it, and streams. Writes go to a hidden temporary
file beside the target and are renamed into place on commit: a reader never
sees half a file, and a failed run leaves every target as it was.
"""

from __future__ import annotations

import glob
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from etl_nb.connectors.base import Connector, ReadRequest, WriteRequest
from etl_nb.errors import ConnectorError, SpecError
from etl_nb.spec import ExtractStep, LoadStep

READ_FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".json": "json",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
}
WRITE_FORMATS = {
    ".parquet": "parquet",
    ".csv": "csv",
    ".json": "json",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
}
# DuckDB's COPY options per output format.
_COPY_OPTIONS = {
    "parquet": "FORMAT parquet",
    "csv": "FORMAT csv, HEADER true",
    "json": "FORMAT json, ARRAY true",
    "ndjson": "FORMAT json",
}
# Formats whose files can take more rows at the end; the others get part files.
_APPENDABLE = {"csv", "ndjson"}


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class FilesConnector(Connector):
    """A folder of data files."""

    kind = "files"

    def open(self) -> None:
        """Resolve the folder (``${VAR}`` allowed) against the pipeline's base folder."""
        folder = self.resolved(self.spec.url)
        self.folder = (self.context.base_dir / Path(folder).expanduser()).resolve()

    # --- reading -----------------------------------------------------------------------

    def check_extract(self, extract: ExtractStep) -> None:
        """A files extract needs ``path:`` (a glob under the folder), not SQL."""
        if extract.path is None:
            raise SpecError(
                f"Extract '{extract.name}' reads the folder '{self.spec.name}': its body needs "
                "'path: some/file_*.csv' (a glob under the folder), not SQL.",
                step=extract.name,
            )
        if extract.format is None and Path(extract.path).suffix.lower() not in READ_FORMATS:
            raise SpecError(
                f"Extract '{extract.name}': cannot tell the format of '{extract.path}' from its "
                "extension. Add 'format: csv' (or parquet, json, ndjson) to the body.",
                step=extract.name,
            )

    def scan(self, request: ReadRequest, connection: duckdb.DuckDBPyConnection) -> str:
        """A DuckDB SELECT over every file the glob matches (read lazily, when a step needs it)."""
        extract = request.extract
        assert extract.path is not None
        paths = sorted(glob.glob(str(self.folder / extract.path), recursive=True))
        paths = [p for p in paths if os.path.isfile(p)]
        if not paths:
            raise ConnectorError(
                f"No files match '{extract.path}' in {self.folder}. Check the path and the "
                f"folder of connection '{self.spec.name}'.",
                step=extract.name,
            )
        fmt = extract.format or READ_FORMATS[Path(extract.path).suffix.lower()]
        return reader_sql(fmt, paths, dict(extract.options), extract.name)

    # --- writing -----------------------------------------------------------------------

    def check_load(self, load: LoadStep) -> None:
        """A files load needs ``--path`` with a known extension."""
        if load.path is None:
            raise SpecError(
                f"Load '{load.step}' writes to the folder '{self.spec.name}': use --path FILE "
                "(.parquet, .csv, .json or .ndjson), not --table.",
                step=load.step,
            )
        if _write_format(load.path) is None:
            raise SpecError(
                f"Load '{load.step}': cannot tell the format of '{load.path}'. End the path in "
                ".parquet, .csv, .json or .ndjson.",
                step=load.step,
            )

    def target_state(self, load: LoadStep) -> dict[str, Any] | None:
        """The target file's size and mtime (or each part file's, for a folder of parts)."""
        if load.path is None:
            return None
        target = self.folder / load.path
        if target.is_dir():
            parts = sorted(p for p in target.iterdir() if p.is_file())
            return {"parts": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in parts]}
        if target.is_file():
            stat = target.stat()
            return {"file": [stat.st_size, stat.st_mtime_ns]}
        return {"missing": True}

    def write(self, request: WriteRequest) -> StagedFile:
        """Stage the rows in a temporary file; the returned handle renames it into place."""
        load = request.load
        assert load.path is not None
        target = self.folder / load.path
        fmt = _write_format(load.path)
        assert fmt is not None
        target.parent.mkdir(parents=True, exist_ok=True)
        if load.mode == "append" and (target.is_dir() or fmt not in _APPENDABLE):
            return self._stage_part_file(request, target, fmt)
        if target.is_dir():
            raise ConnectorError(
                f"Cannot {load.mode} {load_path(request)}: it is a folder of part files (from "
                "--mode append), not a file. Use another --path, or delete the folder to start over.",
                step=load.step,
            )
        staging = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            if load.mode == "merge" and target.exists():
                _copy(request, _merged_sql(request, target, fmt), staging, fmt)
                # A merge loads the step's rows; the file's other rows were there before.
                rows = int(
                    request.connection.execute(f"SELECT count(*) FROM {request.table_sql}").fetchall()[0][0]
                )
            elif load.mode == "append" and target.exists():
                rows = self._stage_append(request, target, staging, fmt)
            else:
                rows = _copy(request, f"SELECT * FROM {request.table_sql}", staging, fmt)
        except BaseException:
            staging.unlink(missing_ok=True)
            raise
        return StagedFile(staging=staging, target=target, rows=rows)

    def _stage_part_file(self, request: WriteRequest, target: Path, fmt: str) -> StagedFile:
        if target.is_file():
            raise ConnectorError(
                f"Cannot append to {load_path(request)}: {fmt} files cannot grow, so appends go to "
                f"part files in a folder of that name, but a file is there. Use --mode replace "
                "or another --path.",
                step=request.load.step,
            )
        target.mkdir(parents=True, exist_ok=True)
        part = target / f"part-{request.run_id}-{uuid.uuid4().hex[:8]}.{fmt}"
        staging = target / f".{part.name}.tmp"
        try:
            rows = _copy(request, f"SELECT * FROM {request.table_sql}", staging, fmt)
        except BaseException:
            staging.unlink(missing_ok=True)
            raise
        return StagedFile(staging=staging, target=part, rows=rows)

    def _stage_append(self, request: WriteRequest, target: Path, staging: Path, fmt: str) -> int:
        existing = request.connection.sql(reader_sql(fmt, [str(target)], {}, request.load.step)).columns
        if existing != request.relation.columns:
            raise ConnectorError(
                f"Cannot append to {load_path(request)}: its columns {existing} differ from "
                f"the step's {request.relation.columns}. Use --mode replace to rewrite it.",
                step=request.load.step,
            )
        rows_file = staging.with_suffix(".rows")
        newline, ends_with_newline = _line_endings(target)
        try:
            options = (
                f"FORMAT csv, HEADER false, NEW_LINE {_sql_string(newline)}"
                if fmt == "csv"
                else _COPY_OPTIONS[fmt]
            )
            rows = _copy(request, f"SELECT * FROM {request.table_sql}", rows_file, fmt, options)
            shutil.copyfile(target, staging)
            with staging.open("ab") as out, rows_file.open("rb") as new_rows:
                if not ends_with_newline:  # else the first new row would join the last old one
                    out.write(newline.encode())
                shutil.copyfileobj(new_rows, out)
        finally:
            rows_file.unlink(missing_ok=True)
        return rows


def _line_endings(path: Path) -> tuple[str, bool]:
    """The file's line ending (``\r\n`` or ``\n``, from its first line) and whether it ends with one."""
    with path.open("rb") as data:
        head = data.read(1 << 16)
        data.seek(0, os.SEEK_END)
        if data.tell() == 0:
            return "\n", True
        data.seek(-1, os.SEEK_END)
        last = data.read(1)
    first_break = head.find(b"\n")
    newline = "\r\n" if first_break > 0 and head[first_break - 1 : first_break] == b"\r" else "\n"
    return newline, last == b"\n"


def load_path(request: WriteRequest) -> str:
    """The load's path as the user wrote it, for messages."""
    return f"'{request.load.path}'"


@dataclass
class StagedFile:
    """A fully written temporary file waiting to replace its target."""

    staging: Path
    target: Path
    rows: int

    def commit(self) -> None:
        """Rename the staged file over the target (atomic on one filesystem)."""
        os.replace(self.staging, self.target)

    def abort(self) -> None:
        """Delete the staged file."""
        self.staging.unlink(missing_ok=True)


def _write_format(path: str) -> str | None:
    return WRITE_FORMATS.get(Path(path.rstrip("/")).suffix.lower())


def reader_sql(fmt: str, paths: list[str], options: dict[str, Any], step: str) -> str:
    """A SELECT reading ``paths`` with DuckDB's reader for ``fmt`` and the user's ``options``."""
    if fmt == "csv" and "delimiter" in options:  # the name users know; DuckDB calls it sep
        options["sep"] = options.pop("delimiter")
    if fmt in ("json", "ndjson"):
        options.setdefault("format", "newline_delimited" if fmt == "ndjson" else "auto")
    reader = {"csv": "read_csv", "parquet": "read_parquet", "json": "read_json", "ndjson": "read_json"}[fmt]
    arguments = [_literal(paths, step)]
    for name, value in options.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise SpecError(f"Extract '{step}': '{name}' is not a valid reader option name.", step=step)
        arguments.append(f"{name} = {_literal(value, step)}")
    return f"SELECT * FROM {reader}({', '.join(arguments)})"


def _literal(value: Any, step: str) -> str:
    """A YAML option value as a DuckDB literal (strings quoted, never spliced raw)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _sql_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v, step) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_sql_string(str(k))}: {_literal(v, step)}" for k, v in value.items()) + "}"
    raise SpecError(f"Extract '{step}': option value {value!r} is not a string, number, list or mapping.")


def _copy(request: WriteRequest, select: str, path: Path, fmt: str, options: str | None = None) -> int:
    sql = f"COPY ({select}) TO {_sql_string(str(path))} ({options or _COPY_OPTIONS[fmt]})"
    try:
        result = request.connection.execute(sql).fetchall()
    except duckdb.Error as exc:
        raise ConnectorError(f"Cannot write {load_path(request)}: {exc}", step=request.load.step) from None
    return int(result[0][0]) if result else 0


def _merged_sql(request: WriteRequest, target: Path, fmt: str) -> str:
    """The target's rows whose key is not in the step's output, plus the step's rows."""
    load = request.load
    missing = [k for k in load.key if k not in request.relation.columns]
    if missing:
        raise SpecError(
            f"Merge key '{missing[0]}' is not a column of step '{load.step}'. "
            f"Columns: {', '.join(request.relation.columns)}.",
            step=load.step,
        )
    keys = ", ".join(_ident(k) for k in load.key)
    duplicates = request.connection.execute(
        f"SELECT count(*) FROM (SELECT {keys} FROM {request.table_sql} GROUP BY ALL HAVING count(*) > 1)"
    ).fetchall()[0][0]
    if duplicates:
        raise ConnectorError(
            f"Cannot merge step '{load.step}' into {load_path(request)}: {duplicates} key value(s) of "
            f"({', '.join(load.key)}) appear more than once in the step's rows. Make the key unique "
            "first (a check with 'unique' finds them).",
            step=load.step,
        )
    columns = request.relation.columns
    types = dict(zip(columns, (str(t) for t in request.relation.types), strict=True))
    old = _old_rows_sql(request, target, fmt)
    # Keys compare as the step's types, however the file's text reads them ("01" matches 1).
    on = " AND ".join(f"s.{_ident(k)} = TRY_CAST(o.{_ident(k)} AS {types[k]})" for k in load.key)
    # CSV rows are text: the old ones stay exactly as written, the new ones are written as a
    # replace would write them; the union keeps the file's column order.
    new = (
        "SELECT " + ", ".join(f"CAST({_ident(c)} AS VARCHAR) AS {_ident(c)}" for c in columns)
        if fmt == "csv"
        else "SELECT *"
    )
    return (
        f"SELECT o.* FROM {old} AS o ANTI JOIN (SELECT {keys} FROM {request.table_sql}) AS s ON {on} "
        f"UNION ALL BY NAME {new} FROM {request.table_sql}"
    )


# Types a JSON reader infers from strings; old rows keep such strings as they were written.
_TYPES_FROM_STRINGS = ("DATE", "TIME", "TIMESTAMP", "UUID", "INTERVAL")


def _old_rows_sql(request: WriteRequest, target: Path, fmt: str) -> str:
    """A reader of the file being merged into that gives back its values as they are written."""
    path = _sql_string(str(target))
    if fmt == "csv":
        return f"read_csv({path}, header = true, all_varchar = true)"
    if fmt == "parquet":
        return f"read_parquet({path})"  # typed: values come back exactly
    json_format = _sql_string("newline_delimited" if fmt == "ndjson" else "auto")
    inferred = request.connection.execute(
        f"DESCRIBE SELECT * FROM read_json({path}, format = {json_format})"
    ).fetchall()
    columns = ", ".join(
        f"{_sql_string(name)}: "
        + _sql_string("VARCHAR" if kind.split("(")[0].split(" ")[0].startswith(_TYPES_FROM_STRINGS) else kind)
        for name, kind, *_ in inferred
    )
    return f"read_json({path}, format = {json_format}, columns = {{{columns}}})"
