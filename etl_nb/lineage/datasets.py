"""Dataset names, the OpenLineage way, from connections as written (never resolved)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from etl_nb.lineage.model import DEFAULT_PORTS, Dataset
from etl_nb.spec import (
    ConnectionSpec,
    ExtractStep,
    LoadStep,
)

if TYPE_CHECKING:
    pass


# --------------------------------------------------------------------------------------
# Dataset names, from connections as written (never resolved)
# --------------------------------------------------------------------------------------


def _folder(connection: ConnectionSpec, base_dir: Path) -> Path:
    return (base_dir / Path(connection.url).expanduser()).resolve()


def _server(connection: ConnectionSpec, scheme: str) -> tuple[str, str, str]:
    """(namespace, database, path) of a database or http URL, credentials left out."""
    parts = urlsplit(connection.url)
    host = parts.hostname or "localhost"
    written = parts.netloc.rsplit("@", 1)[-1]
    if "${" in written:  # a ${HOST} reference stays as written (urlsplit lowercases hosts)
        host = written.rsplit(":", 1)[0] if written.rsplit(":", 1)[-1].isdigit() else written
    try:
        port = parts.port
    except ValueError:  # a ${PORT} reference: keep it as written
        port = None
        host = parts.netloc.rsplit("@", 1)[-1]
    default = DEFAULT_PORTS.get(scheme)
    if port is None and default is not None and ":" not in host:
        port = default
    where = (
        f"{host}:{port}"
        if port is not None and not (scheme in ("http", "https") and port == default)
        else host
    )
    return f"{scheme}://{where}", parts.path.strip("/"), parts.path


def connection_kind(connection: ConnectionSpec) -> str:
    """The connection's family for naming: postgres, mysql, sqlite, duckdb, http, files, or a scheme."""
    if connection.type in ("files", "http", "postgres"):
        return connection.type
    scheme = connection.url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in connection.url else ""
    return {"postgresql": "postgres", "mariadb": "mysql"}.get(scheme, scheme or connection.type)


def table_dataset(connection: ConnectionSpec, table: str) -> Dataset:
    """The dataset of ``table`` (``name`` or ``schema.name``) in database ``connection``."""
    kind = connection_kind(connection)
    if connection.url.lstrip().startswith("${"):  # the whole URL is a secret: name it by connection
        return Dataset(f"etl_nb://{connection.name}", table)
    if kind in ("sqlite", "duckdb"):
        path = connection.url.split("://", 1)[1].removeprefix("/")
        return Dataset(f"{kind}://{Path(path).expanduser().resolve()}", table)
    scheme = "postgres" if kind == "postgres" else kind
    namespace, database, _ = _server(connection, scheme)
    if kind == "postgres":
        schema_name = str(connection.options.get("schema") or "public")
        qualified = table if "." in table else f"{schema_name}.{table}"
        return Dataset(namespace, f"{database or 'postgres'}.{qualified}")
    return Dataset(namespace, f"{database}.{table}" if database and "." not in table else table)


def extract_dataset(connection: ConnectionSpec, extract: ExtractStep, base_dir: Path) -> Dataset:
    """The dataset a file or REST extract reads (databases: see ``table_dataset``)."""
    if connection.type == "files":
        return Dataset("file", str(_folder(connection, base_dir) / (extract.path or "")))
    scheme = connection.url.split("://", 1)[0].lower()
    namespace, _, base_path = _server(connection, scheme)
    path = "/" + "/".join(
        p.strip("/") for p in (base_path, (extract.path or "").split("?", 1)[0]) if p.strip("/")
    )
    return Dataset(namespace, path)


def load_dataset(connection: ConnectionSpec, load: LoadStep, base_dir: Path) -> Dataset:
    """The dataset a load writes."""
    if connection.type == "files":
        return Dataset("file", str(_folder(connection, base_dir) / (load.path or "")))
    return table_dataset(connection, load.table or "")
