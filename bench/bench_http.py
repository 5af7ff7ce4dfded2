"""Paginate a local REST API through etl_nb beside a plain httpx loop.

The API (a ThreadingHTTPServer in its own process, serving pre-encoded JSON
pages, so it is not the bottleneck) holds ``--pages`` pages of ``--size``
nested records. Both variants walk the same pages with page-number paging,
stop at the first empty page and end with the rows in Arrow: etl_nb through
``Pipeline.run()`` (a DuckDB table, the run recorded in a SQLite store), the
plain loop with ``httpx`` + ``json`` + ``pa.Table.from_pylist``. Rounds are
interleaved so machine noise hits both alike; prints the median seconds of
each (and the best, which machine noise disturbs least) and the ratios.

    python bench/bench_http.py [--pages 100] [--size 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


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


def serve(pages: int, size: int, ready: Any) -> None:
    """Serve ``/items?page=N&per_page=S`` from pre-encoded bytes until killed."""
    bodies = {
        n: json.dumps({"data": [record((n - 1) * size + i) for i in range(size)]}).encode()
        for n in range(1, pages + 1)
    }
    empty = json.dumps({"data": []}).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

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


def run_etl_nb(url: str, size: int, workdir: Path) -> int:
    from etl_nb import Pipeline

    p = Pipeline("bench_http", base_dir=workdir, store=f"sqlite:///{workdir / 'store.db'}")
    p.connect("api", url)
    p.extract(
        "items",
        source="api",
        path="/items",
        records="data",
        paginate={"type": "page", "param": "page", "size_param": "per_page", "size": size, "start": 1},
    )
    p.run().raise_for_status()
    rows = p.session.count("items")
    p.close()
    return rows


def run_plain(url: str, size: int) -> int:
    import httpx
    import pyarrow as pa

    tables = []
    with httpx.Client(base_url=url) as client:
        page = 1
        while True:
            response = client.get("/items", params={"page": page, "per_page": size})
            response.raise_for_status()
            records = response.json()["data"]
            if not records:
                break
            tables.append(pa.Table.from_pylist(records))
            page += 1
    return pa.concat_tables(tables).num_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    load_before = f"{os.getloadavg()[0]:.2f}"
    ready: Any = mp.Queue()
    server = mp.Process(target=serve, args=(args.pages, args.size, ready), daemon=True)
    server.start()
    try:
        url = f"http://127.0.0.1:{ready.get(timeout=60)}"
        expected = args.pages * args.size
        times: dict[str, list[float]] = {"etl_nb": [], "httpx loop": []}
        with tempfile.TemporaryDirectory() as tmp:
            # One unmeasured round of each warms imports, the OS and the server.
            run_plain(url, args.size)
            run_etl_nb(url, args.size, Path(tmp))
            for _ in range(args.rounds):
                started = time.perf_counter()
                assert run_plain(url, args.size) == expected
                times["httpx loop"].append(time.perf_counter() - started)
                started = time.perf_counter()
                assert run_etl_nb(url, args.size, Path(tmp)) == expected
                times["etl_nb"].append(time.perf_counter() - started)
    finally:
        server.terminate()
        server.join()

    medians = {name: statistics.median(values) for name, values in times.items()}
    best = {name: min(values) for name, values in times.items()}
    print(f"{expected:,} records in {args.pages} pages of {args.size}, {args.rounds} rounds")
    print(f"load average before/after: {load_before} / {os.getloadavg()[0]:.2f}")
    for name, seconds in medians.items():
        spread = ", ".join(f"{t:.3f}" for t in times[name])
        print(f"  {name:<11} median {seconds:6.3f} s  best {best[name]:6.3f} s  ({spread})")
    ratio, best_ratio = medians["etl_nb"] / medians["httpx loop"], best["etl_nb"] / best["httpx loop"]
    print(f"  ratio etl_nb / httpx loop: {ratio:.2f}x median, {best_ratio:.2f}x best (goal <= 1.2x)")


if __name__ == "__main__":
    main()
