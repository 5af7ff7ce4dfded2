"""Files in a folder: CSV, Parquet, JSON and NDJSON in; Parquet, CSV and JSON out.

DuckDB reads the files itself (``scan``), so a file extract costs nothing
until a later step reads it, and streams. Writes go to a hidden temporary
file beside the target and are renamed into place on commit: a reader never
sees half a file, and a failed run leaves every target as it was.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from etl_nb.connectors.base import Connector, ReadRequest, WriteRequest, count_rows, merge_counts
from etl_nb.connectors.paths import confined
from etl_nb.errors import ConnectorError, SpecError
from etl_nb.spec import ExtractStep, LoadStep, step_id
from etl_nb.store.liveness import host_name, process_alive

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
# Options a folder connection takes (in its connect body or as connect() keywords).
FOLDER_OPTIONS: frozenset[str] = frozenset()
# Formats whose files can take more rows at the end; the others get part files.
_APPENDABLE = {"csv", "ndjson"}
# Missing values in CSV files as pandas and R read them; `options: {nullstr: [...]}` replaces the list.
CSV_MISSING = ("NA", "N/A", "NULL", "null", "NaN", "")
# DuckDB's CSV sniffer types columns from this many rows; the text-column warning looks at as many.
_CSV_SAMPLE_ROWS = 20_480
# The temp table holding that sample on a side connection while the CSV read is checked.
_SAMPLE = "etl_nb_csv_sample"
# DuckDB's CSV reader reads a file in buffers of 16 times max_line_size (32 MB); two threads keep
# several in flight. 8 MB buffers cut a 100 MB file's peak by about 25 MB at the same speed
# (bench/notes/files.md); the sniffer reads across buffers, so the types do not change.
_CSV_BUFFER_BYTES = 8 * 2**20
# A text column is "nearly every value numeric" when at least this share of its values is.
_NUMERIC_SHARE = 0.9


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class FilesConnector(Connector):
    """A folder of data files."""

    kind = "files"

    def open(self) -> None:
        """Resolve the folder (``${VAR}`` allowed) against the pipeline's base folder."""
        unknown = sorted(str(k) for k in set(self.spec.options) - FOLDER_OPTIONS)
        if unknown:
            takes = f"take only: {', '.join(sorted(FOLDER_OPTIONS))}" if FOLDER_OPTIONS else "take no options"
            raise SpecError(
                f"Connection '{self.spec.name}': unknown option '{unknown[0]}'. Folder connections "
                f"{takes}; reader options go in an extract's 'options:'.",
                step=self.spec.name,
            )
        folder = self.resolved(self.spec.url)
        self.folder = (self.context.base_dir / Path(folder).expanduser()).resolve()
        self._described: dict[str, dict[str, str]] = {}  # a CSV read's columns, by its SELECT

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
        where = {"connection": self.spec.name, "step": extract.name, "what": f"Extract '{extract.name}'"}
        pattern = confined(self.folder, extract.path, **where)
        paths = sorted(glob.glob(str(pattern), recursive=True))
        paths = [p for p in paths if os.path.isfile(p)]
        for match in paths:  # a '..' after a wildcard, or a symlink, can still lead out
            confined(self.folder, os.path.relpath(match, self.folder), **where)
        if not paths:
            raise ConnectorError(
                f"No files match '{extract.path}' in {self.folder}. Check the path and the "
                f"folder of connection '{self.spec.name}'.",
                step=extract.name,
            )
        fmt = extract.format or READ_FORMATS[Path(extract.path).suffix.lower()]
        select = reader_sql(fmt, paths, dict(extract.options), extract.name)
        if fmt == "csv":
            described, warnings = _sniff_csv(select, extract, connection)
            if described is not None:
                self._described[select] = described
            for message in warnings:
                self.warn(extract.name, message)
        return select

    def scanned_columns(self, select: str) -> dict[str, str] | None:
        """The columns of a CSV read ``scan`` returned, as its check bound them (no second sniff)."""
        return self._described.get(select)

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
        target = self._target(load)
        fmt = _write_format(load.path)
        assert fmt is not None
        sweep_dead_staging(target.parent)
        if load.mode == "append" and (target.is_dir() or fmt not in _APPENDABLE):
            return self._stage_part_file(request, target, fmt)
        if target.is_dir():
            raise ConnectorError(
                f"Cannot {load.mode} {load_path(request)}: it is a folder of part files (from "
                "--mode append), not a file. Use another --path, or delete the folder to start over.",
                step=load.step,
            )
        staging = staging_path(target, request.run_id)
        counts = None
        if load.mode == "merge":
            _check_merge_keys(request)  # also into a new file: the next merge reads these keys
        created = _make_folders(target.parent)
        try:
            if load.mode == "merge" and target.exists():
                _copy(request, _merged_sql(request, target, fmt), staging, fmt)
                counts = _file_merge_counts(request, target, fmt)
                # A merge loads the step's rows; the file's other rows were there before.
                rows = counts["inserted"] + counts["updated"] + counts["unchanged"]
            elif load.mode == "append" and target.exists():
                rows = self._stage_append(request, target, staging, fmt)
            else:
                rows = _copy(request, f"SELECT * FROM {request.table_sql}", staging, fmt)
        except BaseException:
            _discard(staging, created)
            raise
        if load.mode == "merge" and counts is None:
            counts = merge_counts(rows, 0, 0)
        return StagedFile(staging=staging, target=target, rows=rows, counts=counts, created=created)

    def _target(self, load: LoadStep) -> Path:
        """The file a load writes, refused when its path leads out of the folder."""
        assert load.path is not None
        return confined(
            self.folder,
            load.path,
            connection=self.spec.name,
            step=step_id(load),
            what=f"Load of '{load.step}'",
        )

    def preview(self, request: WriteRequest) -> dict[str, Any]:
        """What the load would do to the file, writing nothing (``--dry-run``)."""
        load = request.load
        assert load.path is not None
        target = self._target(load)
        fmt = _write_format(load.path)
        assert fmt is not None
        if load.mode == "merge":
            _check_merge_keys(request)  # the key checks a real merge makes
        if load.mode == "merge" and target.is_file():
            return _file_merge_counts(request, target, fmt)
        rows = count_rows(request)
        if load.mode == "merge":
            return merge_counts(rows, 0, 0)
        before = _rows_in(request, target, fmt)
        if load.mode == "append":
            return {"rows_added": rows, "rows_before": before, "rows_after": before + rows}
        return {"rows_before": before, "rows_after": rows}

    def _stage_part_file(self, request: WriteRequest, target: Path, fmt: str) -> StagedFile:
        if target.is_file():
            raise ConnectorError(
                f"Cannot append to {load_path(request)}: {fmt} files cannot grow, so appends go to "
                f"part files in a folder of that name, but a file is there. Use --mode replace "
                "or another --path.",
                step=request.load.step,
            )
        created = _make_folders(target)
        sweep_dead_staging(target)
        part = target / f"part-{_safe_run_id(request.run_id)}-{uuid.uuid4().hex[:8]}.{fmt}"
        staging = staging_path(part, request.run_id)
        try:
            rows = _copy(request, f"SELECT * FROM {request.table_sql}", staging, fmt)
        except BaseException:
            _discard(staging, created)
            raise
        return StagedFile(staging=staging, target=part, rows=rows, created=created)

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


# A staging file: hidden, beside its target, named by the run and the process that writes it
# (".orders.parquet.RUN.PID.HOST.RANDOM.tmp", and ".rows" for an append's new rows), so that
# the next load to the folder can tell a dead run's debris from a live run's work.
_STAGING = re.compile(
    r"\..+\.(?P<run>[A-Za-z0-9_-]+)\.(?P<pid>[0-9]+)\.(?P<host>[A-Za-z0-9-]+)\.[0-9a-f]{8}\.(?:tmp|rows)"
)


def _safe_run_id(run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", run_id)[:64] or "run"


def staging_path(target: Path, run_id: str) -> Path:
    """The hidden file beside ``target`` that a run stages it in."""
    return target.parent / (
        f".{target.name}.{_safe_run_id(run_id)}.{os.getpid()}.{host_name()}.{uuid.uuid4().hex[:8]}.tmp"
    )


def sweep_dead_staging(folder: Path) -> None:
    """Delete the staging files in ``folder`` left by runs whose process is gone (killed mid-load)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        found = _STAGING.fullmatch(entry.name)
        if found and not process_alive(int(found["pid"]), found["host"]):
            with contextlib.suppress(OSError):  # another run swept it first
                os.unlink(entry.path)


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
    """A fully written temporary file waiting to replace its target.

    ``created`` are the folders made for it (deepest first): an abort removes
    them again, so a failed run leaves no empty ``out/`` or ``x.parquet/`` behind.
    """

    staging: Path
    target: Path
    rows: int
    counts: dict[str, Any] | None = None  # a merge's inserted/updated/unchanged
    created: list[Path] = field(default_factory=list)

    def commit(self) -> None:
        """Rename the staged file over the target (atomic on one filesystem)."""
        os.replace(self.staging, self.target)

    def abort(self) -> None:
        """Delete the staged file and the folders made for it."""
        _discard(self.staging, self.created)


def _make_folders(folder: Path) -> list[Path]:
    """Make ``folder`` and its missing parents; the ones made, deepest first."""
    missing = [f for f in [folder, *folder.parents] if not f.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def _discard(staging: Path, created: list[Path]) -> None:
    """Delete a staged file and the folders made for it, if nothing else was put there."""
    staging.unlink(missing_ok=True)
    for folder in created:
        try:
            folder.rmdir()
        except OSError:  # not empty (another load wrote there), or gone already
            break


def _write_format(path: str) -> str | None:
    return WRITE_FORMATS.get(Path(path.rstrip("/")).suffix.lower())


def reader_sql(fmt: str, paths: list[str], options: dict[str, Any], step: str) -> str:
    """A SELECT reading ``paths`` with DuckDB's reader for ``fmt`` and the user's ``options``."""
    if fmt == "csv" and "delimiter" in options:  # the name users know; DuckDB calls it sep
        options["sep"] = options.pop("delimiter")
    if fmt == "csv":
        options.setdefault("nullstr", list(CSV_MISSING))
        if "buffer_size" not in options and "max_line_size" not in options:  # the buffer must fit a line
            options["buffer_size"] = _CSV_BUFFER_BYTES
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
    keys = ", ".join(_ident(k) for k in load.key)
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


def _check_merge_keys(request: WriteRequest) -> None:
    """Refuse a merge whose key is not a column of the step, or is not unique in its rows."""
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


def _rows_in(request: WriteRequest, target: Path, fmt: str) -> int:
    """Rows the load's target holds now: a file, a folder of part files, or nothing."""
    if target.is_dir():
        paths = sorted(str(p) for p in target.glob(f"part-*.{fmt}"))
    else:
        paths = [str(target)] if target.is_file() else []
    if not paths:
        return 0
    select = reader_sql(fmt, paths, {}, request.load.step)
    return int(request.connection.execute(f"SELECT count(*) FROM ({select})").fetchall()[0][0])


def _file_merge_counts(request: WriteRequest, target: Path, fmt: str) -> dict[str, Any]:
    """New, changed and unchanged rows of a merge into ``target``, compared as the step's types."""
    columns = request.relation.columns
    types = dict(zip(columns, (str(t) for t in request.relation.types), strict=True))
    keys = request.load.key
    values = [c for c in columns if c not in keys]
    on = " AND ".join(f"s.{_ident(k)} = TRY_CAST(o.{_ident(k)} AS {types[k]})" for k in keys)
    old = _old_rows_sql(request, target, fmt)
    old_columns = set(request.connection.sql(f"SELECT * FROM {old}").columns)
    matched = f"o.{_ident(keys[0])} IS NOT NULL"
    tests = [
        f"s.{_ident(c)} IS DISTINCT FROM "
        + (f"TRY_CAST(o.{_ident(c)} AS {types[c]})" if c in old_columns else "NULL")
        for c in values
    ]
    changed = f"({' OR '.join(tests)})" if tests else "false"
    sums = [
        "count(*)",
        f"count_if({matched})",
        f"count_if({matched} AND {changed})",
        *(f"count_if({matched} AND ({t}))" for t in tests),
    ]
    step_rows = f"(SELECT * FROM {request.table_sql}) AS s"
    row = request.connection.execute(
        f"SELECT {', '.join(sums)} FROM {step_rows} LEFT JOIN {old} AS o ON {on}"
    ).fetchall()[0]
    staged, hits, updated, *per_column = (int(v or 0) for v in row)
    return merge_counts(staged - hits, updated, hits - updated, dict(zip(values, per_column, strict=True)))


def _sniff_csv(
    select: str, extract: ExtractStep, connection: duckdb.DuckDBPyConnection
) -> tuple[dict[str, str] | None, list[str]]:
    """The columns of a CSV read and its text-column warnings, from one sniff of the file.

    The sniffer's sample is kept in a temp table, so the columns and the warnings
    come from one read of the file's first rows (each sniff costs about 30 ms on a
    large file). None if the read does not bind or convert: the extract reports that.
    """
    cursor = connection.cursor()  # a side connection: its temp table and results stay its own
    try:
        cursor.execute(f"CREATE TEMP TABLE {_SAMPLE} AS SELECT * FROM ({select}) LIMIT {_CSV_SAMPLE_ROWS}")
        described = {
            str(name): str(kind) for name, kind, *_ in cursor.execute(f"DESCRIBE {_SAMPLE}").fetchall()
        }
        return described, _text_columns_of_numbers(described, extract, cursor)
    except duckdb.Error:
        return None, []
    finally:
        cursor.close()  # the temp table goes with its connection


def _text_columns_of_numbers(
    described: dict[str, str], extract: ExtractStep, cursor: duckdb.DuckDBPyConnection
) -> list[str]:
    """A warning for each text column of a CSV read whose values are nearly all numbers.

    Such a column usually hides a missing-value marker the reader does not know
    (``?``, ``-``) or decimal commas. Only the sniffer's sample (the temp table
    ``_sniff_csv`` made) is looked at, and only when the read has text columns.
    """
    options = extract.options
    if options.get("all_varchar"):
        return []
    typed = {
        str(c)
        for key in ("types", "dtypes", "column_types")
        if isinstance(options.get(key), dict)
        for c in options[key]
    }
    columns = [name for name, kind in described.items() if kind == "VARCHAR" and name not in typed]
    if not columns:
        return []
    aggregates = []
    for column in columns:
        c = _ident(column)
        aggregates += [
            f"count({c})",
            f"count(TRY_CAST({c} AS DOUBLE))",
            f"count(TRY_CAST(replace({c}, ',', '.') AS DOUBLE))",
            f"mode({c}) FILTER (WHERE TRY_CAST({c} AS DOUBLE) IS NULL)",
            f"min({c}) FILTER (WHERE {c} LIKE '%,%')",
        ]
    counts = cursor.execute(f"SELECT {', '.join(aggregates)} FROM {_SAMPLE}").fetchall()[0]
    warnings = []
    for i, column in enumerate(columns):
        values, numbers, comma_numbers, token, comma_value = counts[5 * i : 5 * i + 5]
        if values == 0:
            continue
        if numbers < values and numbers >= _NUMERIC_SHARE * values:
            markers = [*_markers(options), str(token)]
            warnings.append(
                f"Column '{column}' of extract '{extract.name}' is text because of values like "
                f"'{token}', although nearly every value is a number. If '{token}' means missing, "
                f"add it to the markers: options: {{nullstr: {_yaml_list(markers)}}}."
            )
        elif comma_numbers >= _NUMERIC_SHARE * values and numbers < _NUMERIC_SHARE * values:
            warnings.append(
                f"Column '{column}' of extract '{extract.name}' is text, but its values are numbers "
                f"with a decimal comma (like '{comma_value}'). Set options: {{decimal_separator: ','}} "
                "(the delimiter is then usually ';')."
            )
    return warnings


def _markers(options: dict[str, Any]) -> list[str]:
    """The missing-value markers a CSV extract reads with."""
    given = options.get("nullstr", list(CSV_MISSING))
    return [str(m) for m in given] if isinstance(given, list) else [str(given)]


def _yaml_list(items: list[str]) -> str:
    return "[" + ", ".join(repr(item) for item in items) + "]"
