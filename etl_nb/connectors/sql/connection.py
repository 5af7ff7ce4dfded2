"""Opening a database: the URL, its secrets, the SQLAlchemy engine, the dialect, the error sentences.

``SqlConnection`` is the part of the SQL connector that reading
(``read.py``) and loading (``load.py``) share. Its hooks ``engine_url`` and
``create_engine`` let a subclass (``PostgresConnector``) choose the driver.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from etl_nb._masking import remember
from etl_nb._secrets import resolve, safe_url
from etl_nb.connectors.base import Connector
from etl_nb.connectors.sql.dialects import Dialect, dialect_for
from etl_nb.connectors.sql.errors import Doing, db_errors
from etl_nb.errors import ConnectorError, SpecError

CONNECTION_OPTIONS = ("schema", "connect_args")
# A schema name reaches the server inside connection options (PostgreSQL's search_path): an
# identifier, nothing else, so it can never carry another option.
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")


class SqlConnection(Connector):
    """A database reached through SQLAlchemy: opened once, closed at the end of the session."""

    kind = "sql"
    #: ``write`` reads the step's rows in one scan (key checks run on the staged rows in the
    #: database), so the engine may stream an extract straight into it instead of storing it.
    scans_rows_once: ClassVar[bool] = False

    engine: Engine
    url: URL
    dialect: Dialect
    default_schema: str | None
    connect_args: dict[str, Any]

    # --- opening -------------------------------------------------------------------

    def open(self) -> None:
        """Resolve ``${VAR}`` in the URL, build the engine and check that the server answers."""
        self._check_options()
        schema = self.spec.options.get("schema")
        self.default_schema = str(schema) if schema else None
        env = self.context.env_file
        resolved = resolve(self.spec.url, env, connection=self.spec.name)
        self.connect_args = {
            k: resolve(v, env, connection=self.spec.name) if isinstance(v, str) else v
            for k, v in (self.spec.options.get("connect_args") or {}).items()
        }
        url = self._parse_url(resolved)
        if url.password:
            remember(str(url.password))
        self.url = self.engine_url(url)
        self.engine = self._engine(url)
        with db_errors(self.doing("connect"), on_error=self.engine.dispose), self.engine.connect():
            pass
        self.dialect = dialect_for(self.engine)

    def _check_options(self) -> None:
        unknown = sorted(set(self.spec.options) - set(CONNECTION_OPTIONS))
        if unknown:
            raise SpecError(
                f"Connection '{self.spec.name}': unknown option '{unknown[0]}'. Database connections "
                f"take: {', '.join(CONNECTION_OPTIONS)}.",
                step=self.spec.name,
            )
        schema = self.spec.options.get("schema")
        if schema is not None and not (isinstance(schema, str) and _SCHEMA_NAME.fullmatch(schema)):
            raise SpecError(
                f"Connection '{self.spec.name}': 'schema: {schema}' is not a schema name. Use letters, "
                "digits and underscores, starting with a letter or underscore (for example 'sales').",
                step=self.spec.name,
            )
        if not isinstance(self.spec.options.get("connect_args") or {}, Mapping):
            raise SpecError(
                f"Connection '{self.spec.name}': 'connect_args:' must be a mapping of driver options.",
                step=self.spec.name,
            )

    def _parse_url(self, resolved: str) -> URL:
        try:
            return make_url(resolved)
        except ArgumentError:
            raise SpecError(
                f"Connection '{self.spec.name}': '{safe_url(resolved)}' is not a database URL. Write it as "
                "dialect+driver://user:password@host:port/database (e.g. sqlite:///shop.db).",
                step=self.spec.name,
            ) from None

    def _engine(self, url: URL) -> Engine:
        try:
            return self.create_engine(self.url, dict(self.connect_args))
        except NoSuchModuleError:
            raise SpecError(
                f"Connection '{self.spec.name}': SQLAlchemy has no dialect for '{url.drivername}'. Install "
                "its driver package (e.g. duckdb-engine for duckdb:///, PyMySQL for mysql+pymysql://).",
                step=self.spec.name,
            ) from None
        except ImportError as exc:
            raise SpecError(
                f"Connection '{self.spec.name}' needs the driver package '{exc.name}': pip install it.",
                step=self.spec.name,
            ) from None

    def engine_url(self, url: URL) -> URL:
        """Hook: the URL the engine connects to (here: file databases relative to the notebook)."""
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            path = self.context.base_dir / url.database
            if not path.parent.is_dir():
                raise ConnectorError(
                    f"Connection '{self.spec.name}': the folder of the SQLite file {url.database} does "
                    "not exist. Check the path (relative paths start at the notebook's folder)."
                )
            return url.set(database=str(path))
        if url.get_backend_name() == "duckdb" and url.database and url.database != ":memory:":
            return url.set(database=str(self.context.base_dir / url.database))
        return url

    def create_engine(self, url: URL, connect_args: dict[str, Any]) -> Engine:
        """Hook: the SQLAlchemy engine for ``url``, with the driver options ``connect_args``."""
        return sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)

    def close(self) -> None:
        """Dispose of the engine's pooled connections."""
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.dispose()

    # --- messages ------------------------------------------------------------------

    def where(self) -> str:
        """The connection as shown in messages: its name and its URL without password."""
        return f"'{self.spec.name}' ({safe_url(self.spec.url)})"

    def doing(self, doing: str, step: str | None = None, table: str | None = None) -> Doing:
        """What a database call is for, in the words its error message uses."""
        return Doing(self.where(), doing, step, table)

    @contextmanager
    def db_errors(
        self,
        doing: str,
        step: str | None = None,
        *,
        table: str | None = None,
        on_error: Callable[[], None] | None = None,
    ) -> Iterator[None]:
        """Driver errors inside the block raised as the ``ConnectorError`` that explains them.

        ``on_error`` runs first when the block fails (close a connection, drop a staging table).
        """
        with db_errors(self.doing(doing, step, table), on_error=on_error):
            yield

    def connect(self, doing: str, step: str | None = None) -> Connection:
        """A connection from the engine's pool (closed by the caller)."""
        with self.db_errors(doing, step):
            return self.engine.connect()
