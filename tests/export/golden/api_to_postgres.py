"""The api_to_postgres pipeline, exported from api_to_postgres.ipynb by `etl-nb export`.

Run it with plain Python; the notebook's parameters are command-line options:

    python api_to_postgres.py --pg-url postgresql://postgres@127.0.0.1:5432/postgres
    python api_to_postgres.py --help
"""

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import sqlalchemy as sa

from etl_nb import Pipeline

# # Customers from an API, orders from PostgreSQL, merged back into PostgreSQL
#
# This example pulls customers page by page from a REST API and orders from a PostgreSQL database, joins them
# in DuckDB, checks the result and upserts it into `analytics.customer_revenue`. Run it again and only the
# changed rows are rewritten.
#
# It needs a PostgreSQL server (`pg_url`). When `api_url` is empty it starts a small demo API on 127.0.0.1 so
# that it runs anywhere; point `api_url` at your own API instead.
pg_url = "postgresql://postgres@127.0.0.1:5432/postgres"
api_url = ""
since = "2026-01-01"

# The parameters above are the defaults; options on the command line override them.
parser = argparse.ArgumentParser(description="Run the api_to_postgres pipeline.")
parser.add_argument("--pg-url", default=pg_url)
parser.add_argument("--api-url", default=api_url)
parser.add_argument("--since", default=since)
args = parser.parse_args()
pg_url = args.pg_url
api_url = args.api_url
since = args.since

# Setup for the demo: seed `shop.orders` in PostgreSQL and, without `api_url`, serve customers.
with sa.create_engine(pg_url).begin() as db:
    db.execute(sa.text("CREATE SCHEMA IF NOT EXISTS shop"))
    db.execute(sa.text(
        "CREATE TABLE IF NOT EXISTS shop.orders (id int PRIMARY KEY, customer_id int, "
        "amount numeric(10, 2), updated_at timestamptz)"
    ))
    db.execute(sa.text(
        "INSERT INTO shop.orders SELECT i, 1 + i % 120, (i * 37 % 10000) / 100.0, "
        "timestamptz '2026-01-01' + i * interval '1 hour' FROM generate_series(1, 2000) i "
        "ON CONFLICT (id) DO NOTHING"
    ))

CUSTOMERS = [
    {"id": i, "name": f"Customer {i}", "address": {"country": ["FR", "DE", "NL"][i % 3]}}
    for i in range(1, 121)
]


class DemoApi(BaseHTTPRequestHandler):
    def do_GET(self):
        query = parse_qs(urlparse(self.path).query)
        page, size = int(query["page"][0]), int(query["per_page"][0])
        body = json.dumps({"data": CUSTOMERS[(page - 1) * size : page * size]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if not api_url:
    server = ThreadingHTTPServer(("127.0.0.1", 0), DemoApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api_url = f"http://127.0.0.1:{server.server_port}"

p = Pipeline("api_to_postgres", base_dir=Path(__file__).parent)

# Two connections: the API (type inferred from `http://`) and the database.
p.connect("api", api_url)
p.connect("shop", pg_url)

# Customers, 50 per page; the nested `address` object becomes a struct column.
p.extract(
    "customers",
    source="api",
    path="/customers",
    records="data",
    paginate={"type": "page", "param": "page", "size_param": "per_page", "size": 50},
)

# Orders since `since`, a bound query parameter (never spliced into the SQL).
p.extract(
    "orders",
    source="shop",
    query="""
SELECT id, customer_id, amount, updated_at FROM shop.orders
WHERE updated_at >= {{ since }}
""",
)

p.transform(
    "customer_revenue",
    sql="""
SELECT c.id AS customer_id, c.name, c.address.country AS country,
       count(o.id) AS orders, coalesce(sum(o.amount), 0) AS revenue
FROM customers c LEFT JOIN orders o ON o.customer_id = c.id
GROUP BY ALL
ORDER BY customer_id
""",
)

p.check(
    "customer_revenue",
    [
        {"not_null": ["customer_id", "name"]},
        {"unique": ["customer_id"]},
        {"accepted_values": {"column": "country", "values": ["FR", "DE", "NL"]}},
        {"expression": "revenue >= 0"},
    ],
)

# Upsert into PostgreSQL: the table is created on the first run; later runs update and insert.
p.load("customer_revenue", to="shop", table="analytics.customer_revenue", mode="merge", key="customer_id")

result = p.run(params={"since": since})
result.raise_for_status()
print(result)

print(p.dag().mermaid())
