"""The engine on real files: formats in and out, load modes, checks, parameters, Python steps."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Literal

import duckdb
import polars as pl
import pytest

from etl_nb import Pipeline
from etl_nb.store import RunStore

ORDERS = [
    {"id": 1, "customer_id": 10, "amount": 30.0, "currency": "EUR", "status": "paid"},
    {"id": 2, "customer_id": 10, "amount": 20.0, "currency": "USD", "status": "paid"},
    {"id": 3, "customer_id": 11, "amount": 15.0, "currency": "EUR", "status": "open"},
    {"id": 4, "customer_id": 12, "amount": 50.0, "currency": "USD", "status": "paid"},
    {"id": 5, "customer_id": 13, "amount": 5.0, "currency": "EUR", "status": "refunded"},
]


def _write_csv(path: Path, rows: list[dict[str, object]], delimiter: str = ",") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), delimiter=delimiter, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    """A folder with the same kind of data in every readable format."""
    folder = tmp_path / "lake"
    _write_csv(folder / "orders.csv", ORDERS)
    pl.DataFrame({"currency": ["EUR", "USD"], "rate": [1.0, 0.5]}).write_parquet(folder / "rates.parquet")
    customers = [{"customer_id": i, "name": n} for i, n in [(10, "Ada"), (11, "Grace"), (12, "Linus")]]
    (folder / "customers.ndjson").write_text("".join(json.dumps(c) + "\n" for c in customers))
    (folder / "events.json").write_text(json.dumps([{"id": 1, "kind": "click"}, {"id": 2, "kind": "view"}]))
    return folder


@pytest.fixture
def pipeline(lake: Path) -> Pipeline:
    p = Pipeline("files", base_dir=lake)
    p.connect("lake", ".")
    return p


def _rows(path: Path | str, reader: str = "") -> list[tuple[object, ...]]:
    query = (
        f"SELECT * FROM {reader}('{path}') ORDER BY ALL" if reader else f"SELECT * FROM '{path}' ORDER BY ALL"
    )
    return duckdb.sql(query).fetchall()


# --- reading ------------------------------------------------------------------------------


def test_reads_csv_parquet_json_and_ndjson(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.extract("rates", source="lake", path="rates.parquet")
    pipeline.extract("customers", source="lake", path="customers.ndjson")
    pipeline.extract("events", source="lake", path="events.json")
    result = pipeline.run().raise_for_status()
    assert result.status == "success"
    assert pipeline.table("orders").height == 5
    assert pipeline.table("rates").sort("currency")["rate"].to_list() == [1.0, 0.5]
    assert pipeline.table("customers")["name"].to_list() == ["Ada", "Grace", "Linus"]
    assert pipeline.table("events").sort("id")["kind"].to_list() == ["click", "view"]


def test_a_glob_reads_every_matching_file(pipeline: Pipeline, lake: Path) -> None:
    _write_csv(lake / "fx" / "rates_2025.csv", [{"currency": "EUR", "rate": 1.0}])
    _write_csv(lake / "fx" / "rates_2026.csv", [{"currency": "USD", "rate": 0.9}])
    pipeline.extract("rates", source="lake", path="fx/rates_*.csv")
    pipeline.run().raise_for_status()
    assert sorted(pipeline.table("rates")["currency"].to_list()) == ["EUR", "USD"]


def test_format_and_reader_options_from_the_body(pipeline: Pipeline, lake: Path) -> None:
    _write_csv(lake / "semi.txt", ORDERS, delimiter=";")
    pipeline.extract("orders", source="lake", path="semi.txt", format="csv", options={"delimiter": ";"})
    pipeline.run().raise_for_status()
    assert pipeline.table("orders").columns == list(ORDERS[0])


def test_no_matching_file_names_the_path_and_the_connection(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="nope/*.csv")
    result = pipeline.run()
    assert result.status == "failed"
    assert result.error is not None
    assert "No files match 'nope/*.csv'" in result.error
    assert "connection 'lake'" in result.error
    assert result.steps["orders"].status == "failed"


def test_an_unknown_extension_asks_for_a_format(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="orders.dat")
    result = pipeline.run()
    assert result.error is not None
    assert "Add 'format: csv'" in result.error


# --- writing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "reader"), [("out/paid.parquet", ""), ("out/paid.csv", ""), ("out/paid.json", "read_json_auto")]
)
def test_replace_writes_parquet_csv_and_json(pipeline: Pipeline, lake: Path, path: str, reader: str) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.transform("paid", sql="SELECT id, amount FROM orders WHERE status = 'paid'")
    pipeline.load("paid", to="lake", path=path, mode="replace")
    result = pipeline.run().raise_for_status()
    assert result.steps[f"load:paid:lake:{path}"].rows == 3
    assert result.rows == 3
    assert _rows(lake / path, reader) == [(1, 30.0), (2, 20.0), (4, 50.0)]
    assert [p.name for p in (lake / path).parent.iterdir()] == [Path(path).name]  # no temp files


def test_json_output_is_one_array(pipeline: Pipeline, lake: Path) -> None:
    pipeline.extract("events", source="lake", path="events.json")
    pipeline.load("events", to="lake", path="out/events.json", mode="replace")
    pipeline.run().raise_for_status()
    data = json.loads((lake / "out" / "events.json").read_text())
    assert sorted(d["id"] for d in data) == [1, 2]


def test_replace_twice_leaves_only_the_second_run(pipeline: Pipeline, lake: Path) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.load("orders", to="lake", path="out/orders.parquet", mode="replace")
    pipeline.run().raise_for_status()
    _write_csv(lake / "orders.csv", ORDERS[:2])
    pipeline.run().raise_for_status()
    assert len(_rows(lake / "out" / "orders.parquet")) == 2


def test_append_to_parquet_writes_part_files_in_a_folder(pipeline: Pipeline, lake: Path) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.load("orders", to="lake", path="out/orders.parquet", mode="append")
    first = pipeline.run().raise_for_status()
    second = pipeline.run().raise_for_status()
    folder = lake / "out" / "orders.parquet"
    parts = sorted(p.name for p in folder.iterdir())
    assert folder.is_dir()
    assert len(parts) == 2
    assert all(p.startswith("part-") and p.endswith(".parquet") for p in parts)
    assert any(first.run_id in p for p in parts)
    assert any(second.run_id in p for p in parts)
    assert duckdb.sql(f"SELECT count(*) FROM '{folder}/*.parquet'").fetchall() == [(10,)]


def test_append_to_parquet_refuses_when_a_file_is_there(pipeline: Pipeline, lake: Path) -> None:
    pl.DataFrame({"id": [1]}).write_parquet(lake / "taken.parquet")
    before = (lake / "taken.parquet").read_bytes()
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.load("orders", to="lake", path="taken.parquet", mode="append")
    result = pipeline.run()
    assert result.status == "failed"
    assert result.error is not None
    assert "Use --mode replace or another --path" in result.error
    assert (lake / "taken.parquet").read_bytes() == before


@pytest.mark.parametrize("mode", ["replace", "merge"])
def test_replace_or_merge_onto_a_folder_of_part_files_is_refused(
    pipeline: Pipeline, lake: Path, mode: str
) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.load("orders", to="lake", path="out/orders.parquet", mode="append")
    pipeline.run().raise_for_status()
    before = sorted((lake / "out" / "orders.parquet").iterdir())
    pipeline.load(
        "orders", to="lake", path="out/orders.parquet", mode=mode, key="id" if mode == "merge" else None
    )  # type: ignore[arg-type]
    result = pipeline.run()
    assert result.error is not None
    assert f"Cannot {mode} 'out/orders.parquet': it is a folder of part files" in result.error
    assert sorted((lake / "out" / "orders.parquet").iterdir()) == before


def test_append_to_csv_adds_rows_under_one_header(pipeline: Pipeline, lake: Path) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.load("orders", to="lake", path="out/all.csv", mode="append")
    pipeline.run().raise_for_status()
    pipeline.run().raise_for_status()
    lines = (lake / "out" / "all.csv").read_text().splitlines()
    assert lines[0] == "id,customer_id,amount,currency,status"
    assert len(lines) == 1 + 2 * len(ORDERS)
    assert lines.count(lines[0]) == 1


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        (b"id,amount\n9,1.5", b"id,amount\n9,1.5\n1,30.0\n2,20.0\n"),
        (b"id,amount\r\n9,1.5\r\n", b"id,amount\r\n9,1.5\r\n1,30.0\r\n2,20.0\r\n"),
        (b"id,amount\r\n9,1.5", b"id,amount\r\n9,1.5\r\n1,30.0\r\n2,20.0\r\n"),
    ],
)
def test_append_to_csv_keeps_its_line_endings_and_never_joins_rows(
    pipeline: Pipeline, lake: Path, existing: bytes, expected: bytes
) -> None:
    (lake / "out").mkdir()
    (lake / "out" / "all.csv").write_bytes(existing)
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.transform("two", sql="SELECT id, amount FROM orders WHERE id <= 2 ORDER BY id")
    pipeline.load("two", to="lake", path="out/all.csv", mode="append")
    pipeline.run().raise_for_status()
    assert (lake / "out" / "all.csv").read_bytes() == expected


def test_append_to_ndjson_without_a_final_newline_adds_whole_lines(pipeline: Pipeline, lake: Path) -> None:
    (lake / "out").mkdir()
    (lake / "out" / "all.ndjson").write_text('{"id":9,"amount":1.5}')
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.transform("two", sql="SELECT id, amount FROM orders WHERE id <= 2 ORDER BY id")
    pipeline.load("two", to="lake", path="out/all.ndjson", mode="append")
    pipeline.run().raise_for_status()
    lines = (lake / "out" / "all.ndjson").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [9, 1, 2]


def test_append_to_csv_with_other_columns_is_refused(pipeline: Pipeline, lake: Path) -> None:
    _write_csv(lake / "out" / "all.csv", [{"x": 1}])
    before = (lake / "out" / "all.csv").read_bytes()
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.load("orders", to="lake", path="out/all.csv", mode="append")
    result = pipeline.run()
    assert result.error is not None
    assert "its columns" in result.error
    assert "Use --mode replace" in result.error
    assert (lake / "out" / "all.csv").read_bytes() == before


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_merge_into_a_file_updates_matching_keys_and_adds_new_ones(
    pipeline: Pipeline, lake: Path, suffix: str
) -> None:
    target = lake / "out" / f"totals.{suffix}"
    target.parent.mkdir()
    existing = pl.DataFrame({"customer_id": [10, 99], "total": [1.0, 7.0]})
    existing.write_parquet(target) if suffix == "parquet" else existing.write_csv(target)
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.transform("totals", sql="SELECT customer_id, sum(amount) AS total FROM orders GROUP BY ALL")
    pipeline.load("totals", to="lake", path=f"out/totals.{suffix}", mode="merge", key="customer_id")
    pipeline.run().raise_for_status()
    assert _rows(target) == [(10, 50.0), (11, 15.0), (12, 50.0), (13, 5.0), (99, 7.0)]
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]


def test_merge_into_a_missing_file_creates_it(pipeline: Pipeline, lake: Path) -> None:
    pipeline.extract("rates", source="lake", path="rates.parquet")
    pipeline.load("rates", to="lake", path="out/rates.parquet", mode="merge", key=["currency"])
    pipeline.run().raise_for_status()
    assert _rows(lake / "out" / "rates.parquet") == [("EUR", 1.0), ("USD", 0.5)]


def test_merge_with_duplicate_keys_fails_and_leaves_the_target(pipeline: Pipeline, lake: Path) -> None:
    target = lake / "out" / "orders.parquet"
    target.parent.mkdir()
    pl.DataFrame({"customer_id": [10], "amount": [1.0]}).write_parquet(target)
    before = target.read_bytes()
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.load("orders", to="lake", path="out/orders.parquet", mode="merge", key="customer_id")
    result = pipeline.run()
    assert result.error is not None
    assert "appear more than once" in result.error
    assert "a check with 'unique' finds them" in result.error
    assert target.read_bytes() == before


@pytest.mark.parametrize(
    ("key", "message"),
    [("customer_id", "appear more than once"), ("order_id", "Merge key 'order_id' is not a column")],
)
def test_a_merge_into_a_new_file_checks_its_keys_and_writes_nothing(
    pipeline: Pipeline, lake: Path, key: str, message: str
) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.load("orders", to="lake", path="out/orders.parquet", mode="merge", key=key)
    result = pipeline.run()
    assert result.status == "failed"
    assert result.error is not None
    assert message in result.error
    assert not (lake / "out" / "orders.parquet").exists()


def test_merge_key_that_is_not_a_column_lists_the_columns(pipeline: Pipeline, lake: Path) -> None:
    pl.DataFrame({"id": [1]}).write_parquet(lake / "t.parquet")
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.load("orders", to="lake", path="t.parquet", mode="merge", key="order_id")
    result = pipeline.run()
    assert result.error is not None
    assert "Merge key 'order_id' is not a column of step 'orders'. Columns: id, customer_id" in result.error


def test_merge_into_a_csv_keeps_the_untouched_rows_text_exactly(pipeline: Pipeline, lake: Path) -> None:
    pipeline.transform(
        "prices",
        sql="SELECT * FROM (VALUES (1, '1.50', '0012'), (2, '7.00', '13')) AS v(id, price, code)",
    )
    pipeline.load("prices", to="lake", path="out/t.csv", mode="merge", key=["id"])
    pipeline.run().raise_for_status()
    assert (lake / "out" / "t.csv").read_text() == "id,price,code\n1,1.50,0012\n2,7.00,13\n"
    pipeline.transform(
        "prices", sql="SELECT * FROM (VALUES (3, '2.10', '0014'), (2, '8.00', '07')) AS v(id, price, code)"
    )
    pipeline.run().raise_for_status()
    text = (lake / "out" / "t.csv").read_text()
    assert text.splitlines() == ["id,price,code", "1,1.50,0012", "3,2.10,0014", "2,8.00,07"]


@pytest.mark.parametrize("suffix", ["json", "ndjson", "parquet"])
def test_merge_into_json_or_parquet_keeps_the_untouched_rows_values(
    pipeline: Pipeline, lake: Path, suffix: str
) -> None:
    first = (
        "SELECT * FROM (VALUES (1, '2026-01-01T10:00:00Z', '1.50', 1.50::DECIMAL(5, 2)), "
        "(2, '2026-01-02T11:00:00Z', '7.00', 7.00::DECIMAL(5, 2))) AS v(id, seen, price, amount)"
    )
    pipeline.transform("prices", sql=first)
    pipeline.load("prices", to="lake", path=f"out/t.{suffix}", mode="merge", key=["id"])
    pipeline.run().raise_for_status()
    target = lake / "out" / f"t.{suffix}"
    before = duckdb.sql(f"SELECT * FROM '{target}' ORDER BY id").fetchall()
    pipeline.transform(
        "prices",
        sql="SELECT 3 AS id, '2026-01-03T12:00:00Z' AS seen, '2.10' AS price, 2.10::DECIMAL(5, 2) AS amount",
    )
    pipeline.run().raise_for_status()
    after = duckdb.sql(f"SELECT * FROM '{target}' ORDER BY id").fetchall()
    assert after[:2] == before
    assert len(after) == 3
    if suffix != "parquet":  # the strings that look like timestamps are the strings written
        assert '"2026-01-01T10:00:00Z"' in target.read_text()


def test_a_load_to_a_table_on_a_folder_says_to_use_path(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.load("orders", to="lake", table="orders_copy")
    result = pipeline.run()
    assert result.error is not None
    assert "use --path FILE" in result.error


# --- checks -------------------------------------------------------------------------------


def test_passing_checks_let_the_load_run(pipeline: Pipeline, lake: Path) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.check(
        "orders",
        [
            {"not_null": ["id", "amount"]},
            {"unique": ["id"]},
            {"accepted_values": {"column": "status", "values": ["paid", "open", "refunded"]}},
            {"row_count": {"min": 1, "max": 5}},
            {"expression": "amount > 0"},
        ],
    )
    pipeline.load("orders", to="lake", path="out/orders.parquet", mode="replace")
    result = pipeline.run().raise_for_status()
    assert result.steps["check:orders"].status == "success"
    assert (lake / "out" / "orders.parquet").is_file()


def test_a_failing_check_reports_count_and_five_sample_rows(pipeline: Pipeline, lake: Path) -> None:
    rows = [{"id": i, "amount": -i} for i in range(1, 9)] + [{"id": 9, "amount": 1}]
    _write_csv(lake / "neg.csv", rows)
    pipeline.extract("neg", source="lake", path="neg.csv")
    pipeline.check("neg", [{"expression": "amount > 0"}, {"not_null": "id"}])
    pipeline.load("neg", to="lake", path="out/neg.parquet", mode="replace")
    result = pipeline.run()
    assert result.status == "failed"
    assert result.error is not None
    assert "Check on 'neg' failed:" in result.error
    assert "expression(amount > 0): 8 of 9 rows break 'amount > 0'" in result.error
    assert result.error.count("{'id': ") == 5  # five samples, not eight
    assert "--warn" in result.error
    assert result.steps["check:neg"].status == "failed"
    assert result.steps["load:neg:lake:out/neg.parquet"].status == "skipped"
    assert not (lake / "out").exists()

    record = RunStore().get_run(result.run_id)
    assert record is not None
    check = next(s for s in record.steps if s.step == "check:neg")
    assert check.detail is not None
    [failure] = check.detail["failures"]
    assert (failure["rule"], failure["count"], failure["total"]) == ("expression(amount > 0)", 8, 9)
    assert failure["sample"][0] == {"id": 1, "amount": -1}
    assert len(failure["sample"]) == 5


@pytest.mark.parametrize(
    ("rule", "label", "count"),
    [
        ({"not_null": ["customer_id"]}, "not_null(customer_id)", 1),
        ({"unique": ["customer_id"]}, "unique(customer_id)", 2),
        ({"accepted_values": {"status": ["paid", "open"]}}, "accepted_values(status)", 1),
        ({"row_count": {"max": 3}}, "row_count(max=3)", 6),
    ],
)
def test_each_rule_kind_finds_its_offending_rows(
    pipeline: Pipeline, lake: Path, rule: dict[str, object], label: str, count: int
) -> None:
    _write_csv(lake / "o.csv", [*ORDERS, {**ORDERS[0], "id": 6, "customer_id": ""}])
    pipeline.extract("o", source="lake", path="o.csv")
    pipeline.check("o", [rule])
    result = pipeline.run()
    assert result.status == "failed"
    assert result.error is not None
    assert f"{label}: {count}" in result.error


def test_unique_on_several_columns_checks_the_combination(pipeline: Pipeline, lake: Path) -> None:
    rows = [
        {"day": "2026-01-01", "shop": "a", "n": 1},
        {"day": "2026-01-01", "shop": "b", "n": 2},
        {"day": "2026-01-02", "shop": "a", "n": 3},
    ]
    _write_csv(lake / "sales.csv", rows)
    pipeline.extract("sales", source="lake", path="sales.csv")
    pipeline.check("sales", [{"unique": ["day", "shop"]}])
    pipeline.run().raise_for_status()
    _write_csv(lake / "sales.csv", [*rows, {"day": "2026-01-02", "shop": "a", "n": 4}])
    result = pipeline.run()
    assert result.error is not None
    assert "unique(day, shop): 2 of 4 rows share their (day, shop) with another row" in result.error


def test_check_samples_are_json_even_for_odd_values(pipeline: Pipeline) -> None:
    pipeline.transform(
        "odd",
        sql="SELECT 'nan'::DOUBLE AS x, DATE '2026-01-02' AS d, 1.50::DECIMAL(4, 2) AS m, [1, 2] AS l",
    )
    pipeline.check("odd", [{"expression": "x < 0"}])
    result = pipeline.run()
    record = RunStore().get_run(result.run_id)
    assert record is not None
    [check] = [s for s in record.steps if s.step == "check:odd"]
    assert check.detail is not None
    assert check.detail["failures"][0]["sample"] == [
        {"x": "nan", "d": "2026-01-02", "m": "1.50", "l": "[1, 2]"}
    ]


def test_a_warn_check_reports_without_failing(pipeline: Pipeline, lake: Path) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.check("orders", [{"accepted_values": {"status": ["paid"]}}], warn=True)
    pipeline.load("orders", to="lake", path="out/orders.parquet", mode="replace")
    result = pipeline.run()
    assert result.status == "success"
    check = result.steps["check:orders"]
    assert check.status == "warned"
    assert check.error is not None
    assert "2 of 5 rows have a status outside ['paid']" in check.error
    assert (lake / "out" / "orders.parquet").is_file()
    record = RunStore().get_run(result.run_id)
    assert record is not None
    assert next(s for s in record.steps if s.step == "check:orders").status == "warned"


def test_a_check_on_a_missing_column_lists_the_columns(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.check("orders", [{"not_null": ["amont"]}])
    result = pipeline.run()
    assert result.error is not None
    assert "names column 'amont', which 'orders' does not have. Columns: amount" in result.error


# --- parameters ---------------------------------------------------------------------------


def test_parameters_are_bound_as_values(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.transform("chosen", sql="SELECT * FROM orders WHERE status = {{ status }} AND amount >= {{min}}")
    pipeline.run(params={"status": "paid", "min": 25}).raise_for_status()
    assert sorted(pipeline.table("chosen")["id"].to_list()) == [1, 4]


def test_a_parameter_value_that_looks_like_sql_stays_data(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.transform("chosen", sql="SELECT * FROM orders WHERE status = {{ status }}")
    result = pipeline.run(params={"status": "1; DROP TABLE orders; --"})
    assert result.status == "success"
    assert pipeline.table("chosen").height == 0
    assert pipeline.table("orders").height == 5
    assert pipeline.session.count("orders") == 5


def test_pipeline_parameter_defaults_are_overridden_by_run_params(lake: Path) -> None:
    p = Pipeline("params", base_dir=lake, parameters={"status": "open"})
    p.connect("lake", ".")
    p.extract("orders", source="lake", path="orders.csv")
    p.transform("chosen", sql="SELECT id FROM orders WHERE status = {{ status }}")
    p.run().raise_for_status()
    assert p.table("chosen")["id"].to_list() == [3]
    p.run(params={"status": "refunded"}).raise_for_status()
    assert p.table("chosen")["id"].to_list() == [5]


def test_an_unknown_parameter_is_a_clear_error(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.transform("chosen", sql="SELECT * FROM orders WHERE status = {{ status }}")
    result = pipeline.run()
    assert result.status == "failed"
    assert result.error == (
        "Step 'chosen' uses the parameter {{ status }} but it has no value. Define 'status' in the "
        "parameters cell or pass it: run(params={'status': ...})."
    )


def test_a_parameter_cannot_name_a_table(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.transform("chosen", sql="SELECT * FROM {{ table }}")
    result = pipeline.run(params={"table": "orders"})
    assert result.error is not None
    assert result.error.startswith("Transform 'chosen' reads from {{ table }} as if it were a table.")
    assert "cannot name a table or column" in result.error


# --- Python transforms --------------------------------------------------------------------


def test_python_transform_result_is_the_last_expression(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.extract("customers", source="lake", path="customers.ndjson")
    pipeline.transform(
        "named",
        python=(
            "paid = orders.filter(pl.col('status') == 'paid')\n"
            "paid = paid.join(customers, on='customer_id')\n"
            "paid.select('id', 'name').sort('id')\n"
        ),
    )
    result = pipeline.run().raise_for_status()
    assert result.steps["named"].rows == 3
    assert pipeline.table("named").rows() == [(1, "Ada"), (2, "Ada"), (4, "Linus")]


def test_python_transform_may_assign_its_own_name(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.transform("big", python="big = orders.filter(pl.col('amount') > 25)")
    pipeline.run().raise_for_status()
    assert sorted(pipeline.table("big")["id"].to_list()) == [1, 4]


def test_python_transform_sees_parameters(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.transform("big", python="orders.filter(pl.col('amount') > threshold).lazy()")
    pipeline.run(params={"threshold": 25}).raise_for_status()
    assert sorted(pipeline.table("big")["id"].to_list()) == [1, 4]


def test_a_step_named_like_a_python_builtin_is_still_an_input(pipeline: Pipeline) -> None:
    pipeline.extract("input", source="lake", path="orders.csv")
    pipeline.transform("paid", python="input.filter(pl.col('status') == 'paid')")
    assert pipeline.dag().upstream("paid") == ["input"]
    pipeline.run().raise_for_status()
    assert pipeline.table("paid").height == 3


def test_function_transform_gets_frames_by_argument_name(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.extract("rates", source="lake", path="rates.parquet")

    def in_eur(orders: pl.DataFrame, rates: pl.DataFrame) -> pl.DataFrame:
        return orders.join(rates, on="currency").select("id", eur=pl.col("amount") * pl.col("rate"))

    pipeline.transform("in_eur", python=in_eur)
    pipeline.transform("total", sql="SELECT sum(eur) AS eur FROM in_eur")
    pipeline.run().raise_for_status()
    assert pipeline.table("total")["eur"].to_list() == [30.0 + 10.0 + 15.0 + 25.0 + 5.0]


def test_python_error_names_step_line_and_exception(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.transform("bad", python="x = 1\norders.select(pl.col('nope'))")
    result = pipeline.run()
    assert result.error is not None
    assert result.error.startswith("Python error in transform 'bad' at line 2: ColumnNotFoundError")


def test_python_transform_without_a_result_says_how_to_give_one(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.transform("bad", python="x = orders.head(1)")
    result = pipeline.run()
    assert result.error is not None
    assert "must end with an expression that is its result" in result.error


def test_python_transform_returning_something_else_is_refused(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.transform("bad", python="orders.height")
    result = pipeline.run()
    assert result.error is not None
    assert "returned int; return a Polars DataFrame" in result.error


# --- SQL errors, views and tables, partial runs --------------------------------------------


def test_sql_error_at_run_time_names_the_step(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.transform("bad", sql="SELECT amont FROM orders")
    result = pipeline.run()
    assert result.error is not None
    assert result.error.startswith("SQL error in transform 'bad':")
    assert "amont" in result.error


@pytest.mark.parametrize(
    "ending", [";", " ;\n", " -- paid only", ";  -- paid only\n", " /* note */ ;", "\n-- end\n;\n"]
)
@pytest.mark.parametrize("materialize", ["auto", "all"])
def test_sql_may_end_with_a_semicolon_or_a_comment_when_fused_or_not(
    pipeline: Pipeline, lake: Path, ending: str, materialize: Literal["auto", "all"]
) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.transform("paid", sql="SELECT * FROM orders WHERE status = 'paid'" + ending)
    pipeline.transform("counted", sql="SELECT count(*) AS n FROM paid" + ending)
    pipeline.load("counted", to="lake", path="out/counted.csv", mode="replace")
    pipeline.run(materialize=materialize).raise_for_status()
    assert _rows(lake / "out" / "counted.csv") == [(3,)]


def test_a_sql_error_in_a_fused_step_quotes_the_steps_own_line(pipeline: Pipeline, lake: Path) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.transform("paid", sql="SELECT id,\n  amont\nFROM orders -- typo")
    pipeline.transform("counted", sql="SELECT count(*) AS n FROM paid;")
    pipeline.load("counted", to="lake", path="out/counted.csv", mode="replace")
    result = pipeline.run()
    assert result.steps["paid"].status == "failed"
    assert result.error is not None
    assert result.error.startswith("SQL error in transform 'paid':")
    assert "LINE 2:   amont" in result.error
    # Never the query the engine wrapped around the step's SQL.
    assert "WITH" not in result.error
    assert "SELECT * FROM (" not in result.error
    assert not (lake / "out" / "counted.csv").exists()


def test_a_sql_error_in_a_step_reading_fused_steps_quotes_its_own_line(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.transform("paid", sql="SELECT * FROM orders WHERE status = 'paid'")
    pipeline.transform("bad", sql="SELECT sum(amont) AS total FROM paid")
    result = pipeline.run()
    assert result.error is not None
    assert result.error.startswith("SQL error in transform 'bad':")
    assert "LINE 1: SELECT sum(amont) AS total FROM paid" in result.error
    assert "WITH" not in result.error
    assert "read_csv" not in result.error


def test_steps_read_once_are_fused_views_and_others_are_tables(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.transform("paid", sql="SELECT * FROM orders WHERE status = 'paid'")
    pipeline.transform("total", sql="SELECT sum(amount) AS total FROM paid")
    pipeline.check("total", [{"not_null": ["total"]}])
    result = pipeline.run().raise_for_status()
    # orders and paid each have one SQL reader: DuckDB fuses them into it; total is checked: a table.
    objects = pipeline.session.objects
    assert objects["total"] == "table"
    assert "table" not in (objects["orders"], objects["paid"])
    # orders' rows come from the profile of its scan, paid's from its CTE in total's query.
    assert (result.steps["orders"].rows, result.steps["paid"].rows, result.steps["total"].rows) == (
        5,
        3,
        1,
    )
    all_tables = pipeline.run(materialize="all").raise_for_status()
    assert (all_tables.steps["orders"].rows, all_tables.steps["paid"].rows) == (5, 3)


@pytest.mark.parametrize("materialize", ["auto", "all"])
def test_a_cte_that_shadows_a_step_reads_the_step_in_its_body(
    pipeline: Pipeline, materialize: Literal["auto", "all"]
) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.transform("paid", sql="WITH orders AS (SELECT * FROM orders WHERE status = 'paid') FROM orders")
    pipeline.run(materialize=materialize).raise_for_status()
    assert sorted(pipeline.table("paid")["id"].to_list()) == [1, 2, 4]


def test_only_runs_the_named_steps_with_their_checks_and_loads(pipeline: Pipeline, lake: Path) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.extract("rates", source="lake", path="rates.parquet")
    pipeline.transform("paid", sql="SELECT * FROM orders WHERE status = 'paid'")
    pipeline.check("paid", [{"row_count": {"min": 1}}])
    pipeline.load("paid", to="lake", path="out/paid.csv", mode="replace")
    pipeline.run().raise_for_status()
    _write_csv(lake / "orders.csv", ORDERS[:1])
    partial = pipeline.run(only=["orders", "paid"]).raise_for_status()
    assert list(partial.steps) == ["orders", "paid", "check:paid", "load:paid:lake:out/paid.csv"]
    assert len((lake / "out" / "paid.csv").read_text().splitlines()) == 2


def test_only_accepts_a_comma_separated_string(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.extract("rates", source="lake", path="rates.parquet")
    pipeline.transform("paid", sql="SELECT * FROM orders WHERE status = 'paid'")
    result = pipeline.run(only="orders, paid").raise_for_status()
    assert list(result.steps) == ["orders", "paid"]


def test_from_step_runs_it_and_everything_downstream(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.extract("rates", source="lake", path="rates.parquet")
    pipeline.transform("paid", sql="SELECT * FROM orders WHERE status = 'paid'")
    pipeline.transform("total", sql="SELECT sum(amount) AS total FROM paid")
    pipeline.run(materialize="all").raise_for_status()
    partial = pipeline.run(from_step="paid").raise_for_status()
    assert list(partial.steps) == ["paid", "total"]
    assert pipeline.table("total")["total"].to_list() == [100.0]


def test_a_partial_run_needs_its_inputs_in_the_session(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.transform("paid", sql="SELECT * FROM orders WHERE status = 'paid'")
    result = pipeline.run(only=["paid"])
    assert result.status == "failed"
    assert result.error is not None
    assert "reads 'orders', which is not part of this run" in result.error
    assert "Add it to --only or run everything" in result.error


def test_only_an_unknown_step_is_a_clear_error(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    result = pipeline.run(only=["ordres"])
    assert result.error is not None
    assert "There is no step 'ordres' to run." in result.error


def test_an_error_skips_the_steps_after_it(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.transform("bad", sql="SELECT nope FROM orders")
    pipeline.transform("after", sql="SELECT * FROM bad")
    result = pipeline.run()
    assert [s.status for s in result.steps.values()] == ["success", "failed", "skipped"]
    with pytest.raises(Exception, match="SQL error in transform 'bad'"):
        result.raise_for_status()


# --- incremental extracts -----------------------------------------------------------------


def test_an_incremental_extract_reads_only_rows_newer_than_the_last_good_run(
    pipeline: Pipeline, lake: Path
) -> None:
    _write_csv(
        lake / "events.csv", [{"id": 1, "updated_at": "2026-01-01"}, {"id": 2, "updated_at": "2026-01-02"}]
    )
    pipeline.extract("events", source="lake", path="events.csv", incremental="updated_at")
    pipeline.load("events", to="lake", path="out/events.csv", mode="append")
    assert pipeline.run().raise_for_status().steps["events"].rows == 2
    with (lake / "events.csv").open("a") as out:
        out.write("3,2026-01-03\n")
    second = pipeline.run().raise_for_status()
    assert second.steps["events"].rows == 1
    assert pipeline.table("events")["id"].to_list() == [3]
    assert pipeline.run().raise_for_status().steps["events"].rows == 0
    lines = (lake / "out" / "events.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["id", "1", "2", "3"]


def test_a_failed_run_does_not_advance_the_high_water_mark(pipeline: Pipeline, lake: Path) -> None:
    _write_csv(lake / "events.csv", [{"id": 1, "updated_at": "2026-01-01"}])
    pipeline.extract("events", source="lake", path="events.csv", incremental="updated_at")
    pipeline.check("events", [{"expression": "id > 1"}])
    assert pipeline.run().status == "failed"
    assert RunStore().watermark("files", "events") is None
    pipeline.check("events", [{"row_count": {"min": 1}}])
    assert pipeline.run().raise_for_status().steps["events"].rows == 1


def test_an_incremental_column_that_is_missing_is_a_clear_error(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv", incremental="updated_at")
    result = pipeline.run()
    assert result.error is not None
    assert "Extract 'orders' is incremental on 'updated_at', but its rows have no such column" in result.error


def test_a_parameter_in_a_check_expression_is_bound(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.check("orders", [{"expression": "amount >= {{ floor }}"}])
    assert pipeline.run(params={"floor": 0}).status == "success"
    failed = pipeline.run(params={"floor": 1000})
    assert failed.status == "failed"
    assert failed.error is not None
    assert "rows break 'amount >= {{ floor }}'" in failed.error


def test_a_check_expression_naming_a_missing_column_is_one_line_without_the_wrapping_sql(
    pipeline: Pipeline,
) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.check("orders", [{"expression": "amont >= 0"}])
    failed = pipeline.run()
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.startswith("Check expression(amont >= 0) cannot run: Binder Error:")
    assert '"amount"' in failed.error  # DuckDB's candidate names the column meant
    assert "\n" not in failed.error
    assert "count(*)" not in failed.error  # the SELECT etl_nb wraps the rule in is not the user's


def test_a_parameter_shared_by_a_source_query_and_a_transform_reaches_both(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    import sqlite3

    with sqlite3.connect(tmp_path / "shop.db") as db:
        db.execute("CREATE TABLE orders (id INTEGER, status TEXT)")
        db.executemany("INSERT INTO orders VALUES (?, ?)", [(1, "paid"), (2, "open"), (3, "paid")])
    pipeline.connect("shop", f"sqlite:///{tmp_path / 'shop.db'}")
    pipeline.extract("orders", source="shop", query="SELECT * FROM orders WHERE status = {{ status }}")
    pipeline.transform("labelled", sql="SELECT *, {{ status }} AS wanted FROM orders")
    pipeline.run(params={"status": "paid"}).raise_for_status()
    assert pipeline.table("labelled")["wanted"].to_list() == ["paid", "paid"]


@pytest.mark.parametrize("partial", [{"only": ["orders"]}, {"only": "orders"}, {"from_step": "orders"}])
def test_a_partial_run_advances_a_mark_only_when_all_downstream_of_the_extract_ran(
    pipeline: Pipeline, lake: Path, tmp_path: Path, partial: dict[str, Any]
) -> None:
    import sqlite3

    source = tmp_path / "shop.db"
    with sqlite3.connect(source) as db:
        db.execute("CREATE TABLE orders (id INTEGER, amount REAL, updated_at TEXT)")
        db.executemany(
            "INSERT INTO orders VALUES (?, ?, ?)", [(1, 150.0, "2026-01-01"), (2, 300.0, "2026-01-02")]
        )
    pipeline.connect("shop", f"sqlite:///{source}")
    pipeline.extract("orders", source="shop", query="SELECT * FROM orders", incremental="updated_at")
    pipeline.transform("big", sql="SELECT id, amount FROM orders WHERE amount > 100")
    pipeline.load("big", to="lake", path="out/big.csv", mode="append")
    pipeline.run().raise_for_status()
    with sqlite3.connect(source) as db:
        db.execute("INSERT INTO orders VALUES (3, 500.0, '2026-01-03')")
    pipeline.run(**partial).raise_for_status()
    pipeline.run().raise_for_status()
    assert _rows(lake / "out" / "big.csv") == [(1, 150.0), (2, 300.0), (3, 500.0)]
    assert RunStore().watermark("files", "orders") == "2026-01-03"


def test_a_schema_qualified_read_of_a_step_gives_the_same_rows_fused_or_not(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.transform("paid", sql="SELECT * FROM orders WHERE status = 'paid'")
    pipeline.transform("counted", sql="SELECT count(*) AS n FROM main.paid")
    pipeline.run().raise_for_status()
    fused = pipeline.table("counted")["n"].to_list()
    pipeline.run(materialize="all").raise_for_status()
    assert fused == pipeline.table("counted")["n"].to_list()


def test_only_an_extract_keeps_its_rows_for_the_steps_a_later_run_adds(pipeline: Pipeline) -> None:
    pipeline.extract("orders", source="lake", path="orders.csv")
    pipeline.transform("paid", sql="SELECT * FROM orders WHERE status = 'paid'")
    pipeline.run(only=["orders"]).raise_for_status()
    assert pipeline.table("orders").height == 5
    pipeline.run(only=["paid"]).raise_for_status()
    assert pipeline.table("paid").height > 0
