"""The cache file: kept step outputs in one DuckDB file, its cap, and least-recently-used eviction.

Outputs live in ``.etl_nb/cache/outputs.duckdb`` in the project folder, one
table per output (DuckDB to DuckDB, so types stay exact), with an index table
(``etl_cache_entries``). The file is attached to a session's connection only
while outputs are read or written, so several processes share it. Its size
is capped (``ETL_NB_CACHE_MAX``, default 2 GB) by dropping the least
recently used outputs, those pinned for a ``--resume`` last.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from etl_nb._logging import get_logger
from etl_nb.engine.sqltext import quote
from etl_nb.errors import EtlError
from etl_nb.project import PROJECT_DIR, project_home

CACHE_MAX_ENV = "ETL_NB_CACHE_MAX"
DEFAULT_CACHE_MAX = 2 * 1024**3
CACHE_FILE = "outputs.duckdb"
_ALIAS = "etl_nb_cache"
_ENTRIES = "etl_cache_entries"
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}

log = get_logger()


# --- where, and how big -------------------------------------------------------------------


def cache_path(base_dir: Path | None = None) -> Path:
    """The cache file of the project that ``base_dir`` belongs to."""
    return project_home(base_dir) / PROJECT_DIR / "cache" / CACHE_FILE


def cache_max_bytes() -> int:
    """The cache's cap: ``ETL_NB_CACHE_MAX`` (``500MB``, ``2GB``, a number of bytes), default 2 GB."""
    text = os.environ.get(CACHE_MAX_ENV, "").strip()
    if not text:
        return DEFAULT_CACHE_MAX
    match = _SIZE.fullmatch(text)
    if match is None:
        raise EtlError(f"{CACHE_MAX_ENV}='{text}' is not a size: write it like 500MB or 2GB.")
    unit = (match.group(2) or "").lower()[:1]
    return int(float(match.group(1)) * _UNITS[unit])


# --- the file of outputs ------------------------------------------------------------------


@dataclass(frozen=True)
class CacheEntry:
    """One kept output: a step's rows under one fingerprint."""

    key: str
    pipeline: str
    step: str
    digest: str
    table: str
    rows: int
    bytes: int
    run_id: str
    created_at: dt.datetime
    used_at: dt.datetime
    pinned_by: str | None  # the failed run that keeps it for --resume
    reusable: bool  # False: kept only for --resume (a database or API extract without cache_ttl)


class CacheBusy(Exception):
    """Another process holds the cache file longer than we wait."""


class OutputCache:
    """The DuckDB file holding kept outputs, attached to a session's connection only while in use."""

    def __init__(self, path: Path, max_bytes: int | None = None) -> None:
        self.path = path
        self.max_bytes = cache_max_bytes() if max_bytes is None else max_bytes

    @contextmanager
    def attached(self, con: duckdb.DuckDBPyConnection, *, wait: float = 10.0) -> Iterator[None]:
        """The file attached to ``con`` as ``etl_nb_cache`` for the block.

        Another process may hold it for a moment: wait up to ``wait`` seconds, then raise ``CacheBusy``.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait
        while True:
            try:
                con.execute(f"ATTACH {_literal(str(self.path))} AS {_ALIAS}")
                break
            except duckdb.Error as exc:
                if "lock" not in str(exc).lower() and "conflict" not in str(exc).lower():
                    raise
                if time.monotonic() > deadline:
                    raise CacheBusy(str(exc)) from None
                time.sleep(0.1)
        try:
            con.execute(
                f"CREATE TABLE IF NOT EXISTS {_ALIAS}.{_ENTRIES} (key VARCHAR PRIMARY KEY, "
                "pipeline VARCHAR, step VARCHAR, digest VARCHAR, table_name VARCHAR, rows BIGINT, "
                "bytes BIGINT, run_id VARCHAR, created_at TIMESTAMPTZ, used_at TIMESTAMPTZ, "
                "pinned_by VARCHAR, reusable BOOLEAN)"
            )
            yield
        finally:
            con.execute(f"DETACH {_ALIAS}")

    def find(
        self, con: duckdb.DuckDBPyConnection, pipeline: str, step: str, digest: str
    ) -> CacheEntry | None:
        """The output kept for ``step`` under ``digest`` (the file attached)."""
        rows = con.execute(
            f"SELECT * FROM {_ALIAS}.{_ENTRIES} WHERE key = ?", [_key(pipeline, step, digest)]
        ).fetchall()
        return _entry(rows[0]) if rows else None

    def restore(self, con: duckdb.DuckDBPyConnection, entry: CacheEntry) -> str:
        """Mark ``entry`` used; the SELECT that reads its rows (the file attached)."""
        con.execute(f"UPDATE {_ALIAS}.{_ENTRIES} SET used_at = ? WHERE key = ?", [_now(), entry.key])
        return f"SELECT * FROM {_ALIAS}.{quote(entry.table)}"

    def keep(
        self,
        con: duckdb.DuckDBPyConnection,
        pipeline: str,
        step: str,
        digest: str,
        *,
        run_id: str,
        pinned_by: str | None,
        reusable: bool,
        spooled: Path | None = None,
    ) -> None:
        """Copy session table ``step`` into the file under ``digest`` (or re-pin the copy already there).

        ``spooled``: take the rows from the Arrow stream file a streamed extract left instead.
        """
        key = _key(pipeline, step, digest)
        known = con.execute(f"SELECT key FROM {_ALIAS}.{_ENTRIES} WHERE key = ?", [key]).fetchall()
        if known:
            con.execute(
                f"UPDATE {_ALIAS}.{_ENTRIES} SET used_at = ?, pinned_by = coalesce(?, pinned_by), "
                "reusable = reusable OR ? WHERE key = ?",
                [_now(), pinned_by, reusable, key],
            )
            return
        table = "o_" + hashlib.sha256(key.encode()).hexdigest()[:24]
        before = self._used_bytes(con)
        if spooled is None:
            source = f"main.{quote(step)}"
        else:
            import pyarrow as pa

            source = "_etl_nb_spooled"
            con.register(source, pa.ipc.open_stream(str(spooled)))
        try:
            con.execute(f"CREATE OR REPLACE TABLE {_ALIAS}.{quote(table)} AS SELECT * FROM {source}")
        finally:
            if spooled is not None:
                con.unregister(source)
        rows = int(con.execute(f"SELECT count(*) FROM {_ALIAS}.{quote(table)}").fetchall()[0][0])
        size = max(self._used_bytes(con) - before, 0)
        now = _now()
        con.execute(
            f"INSERT INTO {_ALIAS}.{_ENTRIES} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [key, pipeline, step, digest, table, rows, size, run_id, now, now, pinned_by, reusable],
        )

    def release(self, con: duckdb.DuckDBPyConnection, pipeline: str, *, keep_run: str | None) -> None:
        """Unpin the outputs earlier runs of ``pipeline`` kept for ``--resume`` (``keep_run``'s stay).

        Outputs kept only for a resume are dropped; reusable ones stay as ordinary cache.
        """
        others = "pipeline = ? AND pinned_by IS NOT NULL AND pinned_by IS DISTINCT FROM ?"
        for (table,) in con.execute(
            f"SELECT table_name FROM {_ALIAS}.{_ENTRIES} WHERE {others} AND NOT reusable",
            [pipeline, keep_run],
        ).fetchall():
            con.execute(f"DROP TABLE IF EXISTS {_ALIAS}.{quote(table)}")
        con.execute(f"DELETE FROM {_ALIAS}.{_ENTRIES} WHERE {others} AND NOT reusable", [pipeline, keep_run])
        con.execute(f"UPDATE {_ALIAS}.{_ENTRIES} SET pinned_by = NULL WHERE {others}", [pipeline, keep_run])

    def evict(self, con: duckdb.DuckDBPyConnection) -> list[CacheEntry]:
        """Drop least recently used outputs (pinned ones last) until the file is under the cap."""
        dropped: list[CacheEntry] = []
        while self._used_bytes(con) > self.max_bytes:
            rows = con.execute(
                f"SELECT * FROM {_ALIAS}.{_ENTRIES} ORDER BY pinned_by IS NOT NULL, used_at LIMIT 1"
            ).fetchall()
            if not rows:
                break
            entry = _entry(rows[0])
            con.execute(f"DROP TABLE IF EXISTS {_ALIAS}.{quote(entry.table)}")
            con.execute(f"DELETE FROM {_ALIAS}.{_ENTRIES} WHERE key = ?", [entry.key])
            dropped.append(entry)
        if dropped:
            log.info("cache evicted outputs", count=len(dropped), cap=self.max_bytes)
        return dropped

    def _used_bytes(self, con: duckdb.DuckDBPyConnection) -> int:
        con.execute(f"CHECKPOINT {_ALIAS}")
        rows = con.execute(
            "SELECT used_blocks * block_size FROM pragma_database_size() WHERE database_name = ?", [_ALIAS]
        ).fetchall()
        return int(rows[0][0]) if rows else 0

    # --- for `etl-nb cache list|clear` -----------------------------------------------------

    def entries(self) -> list[CacheEntry]:
        """Every kept output, most recently used first."""
        if not self.path.exists():
            return []
        con = duckdb.connect()
        try:
            with self.attached(con):
                rows = con.execute(f"SELECT * FROM {_ALIAS}.{_ENTRIES} ORDER BY used_at DESC").fetchall()
        finally:
            con.close()
        return [_entry(r) for r in rows]

    def clear(self) -> int:
        """Delete the cache file; the number of outputs it held."""
        count = len(self.entries())
        for path in (self.path, self.path.with_name(self.path.name + ".wal")):
            path.unlink(missing_ok=True)
        return count


def _key(pipeline: str, step: str, digest: str) -> str:
    return f"{pipeline}/{step}/{digest}"


def _entry(row: tuple[Any, ...]) -> CacheEntry:
    key, pipeline, step, digest, table, rows, size, run_id, created, used, pinned, reusable = row
    return CacheEntry(
        key,
        pipeline,
        step,
        digest,
        table,
        int(rows),
        int(size),
        run_id,
        created,
        used,
        pinned,
        bool(reusable),
    )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
