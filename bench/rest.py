"""REST: paginate a local JSON API into a table.

The API is a ThreadingHTTPServer in a process of its own serving pre-encoded
pages (so it is not the bottleneck) of nested records, page-number paging,
an empty page at the end. etl_nb extracts it through ``Pipeline.run()`` into
its DuckDB session (run recorded in a SQLite store); the plain loop uses
httpx + json + ``pa.Table.from_pylist``; dlt runs its ``rest_api`` source
into its ``duckdb`` destination (extract, normalize, load).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bench.harness import Goal, timed

NAME = "rest"
TITLE = "A REST API"
DESCRIPTION = (
    "{records:,} nested records over {pages:,} pages from a local server (its own process, "
    "pre-encoded pages, page-number paging). etl_nb through `Pipeline.run()` into its DuckDB session; "
    "a plain httpx loop building an Arrow table; dlt's `rest_api` source into its `duckdb` destination."
)
COMPETITORS = {
    "etl_nb": "etl_nb `Pipeline.run()`",
    "httpx": "httpx loop + `pa.Table.from_pylist`",
    "dlt": "dlt `rest_api` → `duckdb`",
}
BASELINE = "httpx"
CASE = "paginate into a table"
CASES = [CASE]
GOALS = [Goal("etl_nb at most 1.2× the plain httpx loop", CASE, "etl_nb", 1.2, ("httpx",))]
MEASURES_MEMORY = True
ONE_PROCESS = False
SIZES = {"small": {"records": 2_000, "pages": 20}, "full": {"records": 100_000, "pages": 1_000}}


def record(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "name": f"user{i}",
        "email": f"user{i}@example.com",
        "score": i * 0.25,
        "active": i % 2 == 0,
        "created_at": f"2026-01-{i % 28 + 1:02d}T12:00:00Z",
        "address": {"city": ["Paris", "Lyon", "Nice"][i % 3], "zip": f"{i % 100000:05d}"},
        "tags": ["a", "b"][: i % 3],
    }


def serve(pages: int, per_page: int, ready: Any) -> None:
    """Serve ``/items?page=N`` from pre-encoded bytes until killed."""
    bodies = {
        n: json.dumps({"data": [record((n - 1) * per_page + i) for i in range(per_page)]}).encode()
        for n in range(1, pages + 1)
    }
    empty = json.dumps({"data": []}).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: without this, Nagle and delayed ACKs add ~40 ms a page.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            page = int(parse_qs(urlsplit(self.path).query).get("page", ["1"])[0])
            payload = bodies.get(page, empty)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    ready.put(server.server_address[1])
    server.serve_forever()


@contextmanager
def prepare(size: str, workdir: Path) -> Iterator[dict[str, Any]]:
    """Start the API server for the whole workload."""
    records, pages = SIZES[size]["records"], SIZES[size]["pages"]
    per_page = records // pages
    ready: Any = mp.Queue()
    server = mp.Process(target=serve, args=(pages, per_page, ready), daemon=True)
    server.start()
    try:
        url = f"http://127.0.0.1:{ready.get(timeout=120)}"
        yield {"url": url, "per_page": per_page, "records": per_page * pages}
    finally:
        server.terminate()
        server.join()


def run_etl_nb(url: str, per_page: int, workdir: Path) -> int:
    from etl_nb import Pipeline

    p = Pipeline("bench_http", base_dir=workdir, store=f"sqlite:///{workdir / 'store.db'}")
    p.connect("api", url)
    p.extract(
        "items",
        source="api",
        path="/items",
        records="data",
        paginate={"type": "page", "param": "page", "size_param": "per_page", "size": per_page, "start": 1},
    )
    p.run().raise_for_status()
    rows = p.session.count("items")
    p.close()
    return rows


def run_httpx(url: str, per_page: int, workdir: Path) -> int:
    import httpx
    import pyarrow as pa

    tables = []
    with httpx.Client(base_url=url) as client:
        page = 1
        while True:
            response = client.get("/items", params={"page": page, "per_page": per_page})
            response.raise_for_status()
            records = response.json()["data"]
            if not records:
                break
            tables.append(pa.Table.from_pylist(records))
            page += 1
    return int(pa.concat_tables(tables).num_rows)


def run_dlt(url: str, per_page: int, workdir: Path) -> int:
    import dlt
    from dlt.sources.rest_api import rest_api_source

    source = rest_api_source(
        {
            "client": {"base_url": url},
            "resources": [
                {
                    "name": "items",
                    "endpoint": {
                        "path": "items",
                        "params": {"per_page": per_page},
                        "data_selector": "data",
                        "paginator": {
                            "type": "page_number",
                            "page_param": "page",
                            "base_page": 1,
                            "total_path": None,
                            "stop_after_empty_page": True,
                        },
                    },
                }
            ],
        }
    )
    pipeline = dlt.pipeline(
        pipeline_name="bench_rest",
        destination=dlt.destinations.duckdb(str(workdir / "dlt.duckdb")),
        dataset_name="api",
        pipelines_dir=str(workdir / "dlt_pipelines"),
    )
    info = pipeline.run(source)
    info.raise_on_failed_jobs()
    with pipeline.sql_client() as client:
        rows = client.execute_sql("SELECT count(*) FROM items")
    assert rows, "dlt's destination has no items table"
    return int(rows[0][0])


RUNNERS: dict[str, Callable[[str, int, Path], int]] = {
    "etl_nb": run_etl_nb,
    "httpx": run_httpx,
    "dlt": run_dlt,
}
IMPORTS = {
    "etl_nb": ("etl_nb", "etl_nb.connectors.http"),
    "httpx": ("httpx", "pyarrow"),
    "dlt": ("dlt", "dlt.sources.rest_api"),
}


def run(competitor: str, params: dict[str, Any]) -> dict[str, Any]:
    """In the child: this competitor once; seconds and the rows it ended with."""
    import importlib

    for module in IMPORTS[competitor]:
        importlib.import_module(module)
    with tempfile.TemporaryDirectory() as tmp:
        rows: list[int] = []
        seconds = timed(
            lambda: rows.append(RUNNERS[competitor](params["url"], params["per_page"], Path(tmp)))
        )
    if rows[0] != params["records"]:
        raise SystemExit(f"{competitor} read {rows[0]} records, not {params['records']}")
    return {"seconds": {CASE: seconds}, "extra": {"rows": rows[0]}}
