"""OpenLineage events: a START and a COMPLETE or FAIL per run, through openlineage-python's file transport.

Each event is checked against the OpenLineage RunEvent rules; the column
lineage of a join + aggregate pipeline is checked field by field.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import nbformat
import pytest

from etl_nb import Pipeline
from etl_nb.cli import main
from etl_nb.lineage import pipeline_lineage

from .lineage_events import column_lineage, events, validate

__all__ = ["events"]  # the fixture, used by name

REVENUE_SQL = """
SELECT o.customer_id, sum(o.amount * r.rate) AS revenue_eur
FROM orders o JOIN rates r USING (currency)
WHERE o.status = 'paid'
GROUP BY ALL
"""


def _data(folder: Path) -> None:
    (folder / "orders.csv").write_text(
        "id,customer_id,amount,currency,status\n1,10,5.0,EUR,paid\n2,11,7.0,USD,paid\n3,10,1.0,EUR,open\n"
    )
    (folder / "rates.csv").write_text("currency,rate\nEUR,1.0\nUSD,0.9\n")


def _revenue(folder: Path, *, sql: str = REVENUE_SQL) -> Pipeline:
    _data(folder)
    p = Pipeline("revenue", base_dir=folder, store=f"sqlite:///{folder / 'store.db'}")
    p.connect("lake", str(folder))
    p.extract("orders", source="lake", path="orders.csv")
    p.extract("rates", source="lake", path="rates.csv")
    p.transform("revenue", sql=sql)
    p.load("revenue", to="lake", path="out/revenue.parquet", mode="replace")
    return p


def _expected_revenue_lineage(folder: Path) -> dict[str, set[tuple[str, str, str, str]]]:
    orders, rates = str(folder / "orders.csv"), str(folder / "rates.csv")
    indirect = {
        (orders, "currency", "INDIRECT", "JOIN"),
        (rates, "currency", "INDIRECT", "JOIN"),
        (orders, "status", "INDIRECT", "FILTER"),
        (orders, "customer_id", "INDIRECT", "GROUP_BY"),
    }
    return {
        "customer_id": {(orders, "customer_id", "DIRECT", "IDENTITY"), *indirect},
        "revenue_eur": {
            (orders, "amount", "DIRECT", "AGGREGATION"),
            (rates, "rate", "DIRECT", "AGGREGATION"),
            *indirect,
        },
    }


def test_a_run_emits_start_and_complete_that_follow_the_openlineage_schema(
    tmp_path: Path, events: Any
) -> None:
    p = _revenue(tmp_path)
    p.run().raise_for_status()
    start, complete = events()
    for event in (start, complete):
        validate(event)
    assert [start["eventType"], complete["eventType"]] == ["START", "COMPLETE"]
    assert start["run"]["runId"] == complete["run"]["runId"]
    assert complete["job"]["namespace"] == "etl_nb"
    assert complete["job"]["name"] == "revenue"
    assert [(d["namespace"], d["name"]) for d in complete["inputs"]] == [
        ("file", str(tmp_path / "orders.csv")),
        ("file", str(tmp_path / "rates.csv")),
    ]
    assert [(d["namespace"], d["name"]) for d in complete["outputs"]] == [
        ("file", str(tmp_path / "out" / "revenue.parquet"))
    ]
    schema = {f["name"]: f.get("type") for f in complete["inputs"][0]["facets"]["schema"]["fields"]}
    assert schema == {
        "id": "BIGINT",
        "customer_id": "BIGINT",
        "amount": "DOUBLE",
        "currency": "VARCHAR",
        "status": "VARCHAR",
    }
    output_schema = [f["name"] for f in complete["outputs"][0]["facets"]["schema"]["fields"]]
    assert output_schema == ["customer_id", "revenue_eur"]


def test_the_column_lineage_of_a_join_and_aggregate_names_every_input_column(
    tmp_path: Path, events: Any
) -> None:
    _revenue(tmp_path).run().raise_for_status()
    complete = events()[-1]
    assert column_lineage(complete) == _expected_revenue_lineage(tmp_path)


def test_column_lineage_goes_through_ctes_and_steps_back_to_the_sources(tmp_path: Path, events: Any) -> None:
    p = _revenue(
        tmp_path,
        sql="""
        WITH paid AS (SELECT * FROM orders WHERE status = 'paid')
        SELECT upper(p.currency) AS currency, count(*) AS orders, max(r.rate) AS rate
        FROM paid p JOIN rates r ON p.currency = r.currency
        GROUP BY 1 ORDER BY orders DESC
        """,
    )
    p.run().raise_for_status()
    lineage = column_lineage(events()[-1])
    orders, rates = str(tmp_path / "orders.csv"), str(tmp_path / "rates.csv")
    direct = {c: {(n, f, s) for n, f, t, s in deps if t == "DIRECT"} for c, deps in lineage.items()}
    assert direct == {
        "currency": {(orders, "currency", "TRANSFORMATION")},
        "orders": set(),
        "rate": {(rates, "rate", "AGGREGATION")},
    }
    assert (orders, "status", "INDIRECT", "FILTER") in lineage["rate"]
    assert (rates, "currency", "INDIRECT", "JOIN") in lineage["orders"]
    assert (orders, "currency", "INDIRECT", "GROUP_BY") in lineage["rate"]


def test_a_python_step_depends_on_the_columns_it_reads(tmp_path: Path, events: Any) -> None:
    p = _revenue(tmp_path)
    p.transform(
        "big",
        python='revenue.filter(pl.col("revenue_eur") > 1).with_columns(vip=pl.lit(True))',
    )
    p.load("big", to="lake", path="out/big.parquet", mode="replace")
    p.run().raise_for_status()
    complete = events()[-1]
    validate(complete)
    big = column_lineage(complete, output=1)
    orders, rates = str(tmp_path / "orders.csv"), str(tmp_path / "rates.csv")
    assert set(big) == {"customer_id", "revenue_eur", "vip"}
    direct = {(n, f, s) for n, f, t, s in big["vip"] if t == "DIRECT"}
    assert direct == {(orders, "amount", "TRANSFORMATION"), (rates, "rate", "TRANSFORMATION")}
    assert (orders, "status", "INDIRECT", "FILTER") in big["vip"]


def test_a_failed_run_emits_fail_with_the_error(tmp_path: Path, events: Any) -> None:
    p = _revenue(tmp_path)
    p.check("revenue", [{"row_count": {"min": 100}}])
    run = p.run()
    assert run.status == "failed"
    start, fail = events()
    validate(fail)
    assert fail["eventType"] == "FAIL"
    assert fail["run"]["runId"] == start["run"]["runId"]
    assert "row_count" in fail["run"]["facets"]["errorMessage"]["message"]


def test_the_job_namespace_comes_from_etl_nb_lineage_namespace(
    tmp_path: Path, events: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ETL_NB_LINEAGE_NAMESPACE", "analytics")
    _revenue(tmp_path).run().raise_for_status()
    assert {e["job"]["namespace"] for e in events()} == {"analytics"}


def test_without_configuration_nothing_is_emitted_and_openlineage_is_not_imported(tmp_path: Path) -> None:
    _data(tmp_path)
    script = textwrap.dedent(
        f"""
        import sys
        from etl_nb import Pipeline
        p = Pipeline("quiet", base_dir={str(tmp_path)!r}, store="sqlite:///{tmp_path / "s.db"}")
        p.connect("lake", {str(tmp_path)!r})
        p.extract("orders", source="lake", path="orders.csv")
        p.load("orders", to="lake", path="out.parquet", mode="replace")
        p.run().raise_for_status()
        print(sorted(m for m in ("openlineage", "sqlglot") if m in sys.modules))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINEAGE")}
    env["HOME"] = str(tmp_path)  # no ~/.openlineage/openlineage.yml either
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
    assert "OpenLineage" not in done.stderr
    assert "openlineage" not in done.stdout + done.stderr


def test_pipeline_lineage_without_a_run_reads_the_sql_alone(tmp_path: Path) -> None:
    p = _revenue(tmp_path)
    lineage = pipeline_lineage(p.spec, base_dir=tmp_path)
    (output,) = lineage.outputs
    found = {
        column: {(s.dataset.name, s.field, s.type, s.subtype) for s in sources}
        for column, sources in output.fields.items()
    }
    assert found == _expected_revenue_lineage(tmp_path)


def _notebook(path: Path, cells: list[str]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%load_ext etl_nb"), *(nbformat.v4.new_code_cell(c) for c in cells)]
    nbformat.write(nb, path)
    return path


def test_etl_nb_lineage_prints_a_notebooks_column_lineage_without_running_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _data(tmp_path)
    notebook = _notebook(
        tmp_path / "revenue.ipynb",
        [
            "%etl connect lake .",
            "%%etl extract orders --from lake\npath: orders.csv",
            "%%etl extract rates --from lake\npath: rates.csv",
            f"%%etl transform revenue\n{REVENUE_SQL.strip()}",
            "%etl load revenue --to lake --path out/revenue.parquet --mode replace",
        ],
    )
    assert main(["lineage", str(notebook)]) == 0
    text = capsys.readouterr().out
    assert f"revenue_eur  <- {tmp_path / 'orders.csv'}.amount aggregation" in text
    assert not (tmp_path / "out").exists()

    assert main(["lineage", str(notebook), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    (output,) = data["outputs"]
    assert output["namespace"] == "file"
    assert output["name"] == str(tmp_path / "out" / "revenue.parquet")
    fields = {
        (i["name"], i["field"], i["transformations"][0]["type"], i["transformations"][0]["subtype"])
        for i in output["fields"]["revenue_eur"]
    }
    assert fields == _expected_revenue_lineage(tmp_path)["revenue_eur"]


@pytest.mark.parametrize(
    ("url", "table", "expected"),
    [
        (
            "postgresql://${PGUSER}:${PGPASSWORD}@db.example.com/shop",
            "orders",
            "postgres://db.example.com:5432",
        ),
        ("postgresql://u@${PGHOST}:${PGPORT}/shop", "orders", "postgres://${PGHOST}:${PGPORT}"),
        ("mysql+pymysql://root:pw@127.0.0.1:3307/test", "orders", "mysql://127.0.0.1:3307"),
    ],
)
def test_database_datasets_are_named_from_the_url_as_written_without_credentials(
    url: str, table: str, expected: str
) -> None:
    from etl_nb.lineage import table_dataset
    from etl_nb.spec import ConnectionSpec

    dataset = table_dataset(ConnectionSpec(name="db", type="sql", url=url), table)
    assert dataset.namespace == expected
    assert "pw" not in str(dataset)
    assert "PGPASSWORD" not in str(dataset)


def test_an_api_dataset_is_its_host_and_path_without_credentials_or_query() -> None:
    from etl_nb.lineage import extract_dataset
    from etl_nb.spec import ConnectionSpec, ExtractStep

    api = ConnectionSpec(name="api", type="http", url="https://user:pw@api.example.com/v1?token=${TOKEN}")
    extract = ExtractStep(name="users", source="api", path="/users?active=true")
    dataset = extract_dataset(api, extract, Path("."))
    assert (dataset.namespace, dataset.name) == ("https://api.example.com", "/v1/users")


def test_a_dry_run_writes_nothing_so_it_emits_no_lineage(tmp_path: Path, events: Any) -> None:
    _revenue(tmp_path).run(dry_run=True).raise_for_status()
    assert events() == []
