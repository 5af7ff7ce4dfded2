"""The %etl magics in a real IPython shell: every verb, previews, parameters, errors."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from nbtools import ANSI, Notebook

from etl_nb.notebook.session import EtlUsageError

SETUP = [
    "%etl connect lake data",
    "%%etl extract orders --from lake\npath: orders.csv",
    "%%etl extract rates --from lake\npath: fx/rates_*.csv",
]
REVENUE = (
    "%%etl transform revenue\n"
    "SELECT o.customer_id, round(sum(o.amount * r.rate), 2) AS revenue_eur\n"
    "FROM orders o JOIN rates r USING (currency)\n"
    "WHERE o.status = 'paid' AND o.created_at >= {{ start_date }}\n"
    "GROUP BY ALL ORDER BY 1"
)


def setup(nb: Notebook, *more: str) -> None:
    for cell in [*SETUP, *more]:
        nb.ok(cell)


# --- declaring and running cells ------------------------------------------------------------


def test_connect_declares_a_connection_and_runs_nothing(nb: Notebook) -> None:
    result = nb.ok("%etl connect lake data")
    assert result.text() == "connection lake (files): data"
    assert nb.pipeline().spec.connections["lake"].url == "data"
    assert nb.pipeline()._session is None  # no DuckDB work for a declaration


def test_extract_cell_shows_first_rows_count_schema_and_time(nb: Notebook) -> None:
    nb.ok("%etl connect lake data")
    result = nb.ok("%%etl extract orders --from lake\npath: orders.csv")
    (bundle,) = result.outputs
    assert set(bundle) == {"text/plain", "text/html"}
    headline = bundle["text/plain"].splitlines()[0]
    assert headline.startswith("extract orders: 8 rows \u00d7 6 columns in ")
    assert headline.endswith(" ms")
    assert "created_at" in bundle["text/plain"]
    assert "DATE" in bundle["text/plain"]
    assert "<th>amount<br><small>DOUBLE</small></th>" in bundle["text/html"]
    assert bundle["text/html"].count("<tr>") == 1 + 8


def test_preview_shows_ten_rows_of_many_and_show_limit_shows_fewer(nb: Notebook) -> None:
    setup(nb)
    result = nb.ok("%%etl transform numbers\nSELECT range AS n FROM range(25)")
    text = result.text()
    assert text.splitlines()[0].startswith("transform numbers: 25 rows \u00d7 1 column in ")
    assert text.splitlines()[-1] == "first 10 of 25 rows"
    shown = nb.ok("%etl show numbers --limit 3").outputs[0]
    assert shown["text/plain"].splitlines()[-1] == "first 3 of 25 rows"
    assert shown["text/html"].count("<tr>") == 1 + 3


# Plain types (fetched as Python values), others (through Arrow), NULLs, edge values, no rows.
TYPED = (
    "SELECT true AS b, -1::TINYINT AS t, 2::SMALLINT AS s, 3::INTEGER AS i, 4::BIGINT AS bi, "
    "5::UTINYINT AS ut, 18446744073709551615::UBIGINT AS ub, 1.1::FLOAT AS f, 'nan'::DOUBLE AS d, "
    "'infinity'::DOUBLE AS inf, 'x' AS v, 1.20::DECIMAL(10,2) AS m, "
    "12345678901234567890.123::DECIMAL(38,3) AS m38, NULL::INTEGER AS n"
)
OTHER_TYPES = (
    "SELECT DATE '2026-01-02' AS day, TIMESTAMP '2026-01-02 03:04:05.123456' AS at, "
    "TIMESTAMPTZ '2026-01-01 00:00:00+00' AS tz, TIME '01:02:03' AS tm, 1::HUGEINT AS h, "
    "'a'::BLOB AS bl, [1, 2] AS l, {'a': 1, 'b': 'x'} AS st, 4 AS n"
)


@pytest.mark.parametrize(
    "select",
    [
        TYPED,
        f"{TYPED} UNION ALL SELECT {', '.join(['NULL'] * 14)}",
        f"SELECT * FROM ({TYPED}) WHERE false",
        OTHER_TYPES,
        "SELECT range AS n, range AS n FROM range(3)",  # DuckDB renames a repeated name
        "SELECT range AS n, [range] AS n FROM range(3)",
    ],
    ids=["plain", "nulls", "no-rows", "other", "repeated-names", "repeated-names-other"],
)
def test_the_preview_is_duckdbs_own_polars_frame_for_every_type(nb: Notebook, select: str) -> None:
    from etl_nb.notebook.preview import StepPreview

    shown = nb.ok(f"%%etl transform typed\n{select}").outputs[0]["text/plain"].splitlines()
    expected = nb.pipeline().session.con.sql(f"SELECT * FROM ({select}) LIMIT 10")
    preview = StepPreview(
        "typed",
        expected.pl(),
        len(expected.fetchall()),
        kind="transform",
        types=[str(t) for t in expected.types],
    )
    assert shown[1:] == preview.text().splitlines()[1:]  # all but the time taken


def test_sql_transform_reads_earlier_cells_and_binds_a_notebook_parameter(nb: Notebook) -> None:
    setup(nb)
    nb.ok('start_date = "2026-01-10"')
    nb.ok(REVENUE)
    frame = nb.pipeline().table("revenue")
    assert frame.to_dicts() == [
        {"customer_id": 102, "revenue_eur": 116.99},
        {"customer_id": 103, "revenue_eur": 60.0},
        {"customer_id": 104, "revenue_eur": 15.0},
    ]


def test_a_parameter_value_that_looks_like_sql_is_data(nb: Notebook) -> None:
    setup(nb)
    nb.ok('status = "paid\'; DROP TABLE orders; --"')
    nb.ok("%%etl transform chosen\nSELECT * FROM orders WHERE status = {{ status }}")
    assert nb.pipeline().table("chosen").height == 0
    assert nb.pipeline().table("orders").height == 8
    nb.ok('status = "1; DROP TABLE orders; --"')
    nb.ok("%%etl transform chosen\nSELECT {{ status }} AS echoed, count(*) AS n FROM orders")
    assert nb.pipeline().table("chosen").to_dicts() == [{"echoed": "1; DROP TABLE orders; --", "n": 8}]


def test_python_transform_gets_frames_pl_and_plain_notebook_values(nb: Notebook) -> None:
    setup(nb)
    nb.ok("threshold = 100")
    result = nb.ok(
        "%%etl transform big_orders --python\n"
        "big = orders.filter(pl.col('amount') > threshold)\n"
        "big.select('id', 'amount')"
    )
    assert result.text().startswith("transform big_orders: 2 rows \u00d7 2 columns in ")
    assert nb.pipeline().table("big_orders")["id"].to_list() == [1, 4]


def test_check_cell_passes_and_warn_reports_without_failing(nb: Notebook) -> None:
    setup(nb)
    passed = nb.ok("%%etl check orders\n- not_null: [id]\n- unique: [id]")
    assert passed.text() == "check orders: 2 rules passed"
    warned = nb.ok("%%etl check orders --warn\n- expression: amount < 100")
    assert warned.text() == (
        "check orders: 1 of 1 rules warn\n  - expression(amount < 100): 2 of 8 rows break it"
    )


def test_load_cell_writes_the_step_to_a_parquet_file(nb: Notebook, workdir: Path) -> None:
    setup(nb)
    result = nb.ok("%etl load orders --to lake --path out/orders.parquet --mode replace")
    assert result.text() == "load orders: wrote 8 rows to lake:out/orders.parquet (replace)"
    assert pl.read_parquet(workdir / "data" / "out" / "orders.parquet").height == 8


def test_rerunning_an_unchanged_cell_reuses_its_parse(nb: Notebook) -> None:
    from etl_nb.notebook.session import _parse

    setup(nb)
    before = _parse.cache_info().hits
    nb.ok(SETUP[1])
    assert _parse.cache_info().hits == before + 1


def test_line_options_expand_notebook_variables_but_not_secret_references(nb: Notebook) -> None:
    nb.ok("folder = 'data'")
    nb.ok("%etl connect lake {folder}")
    assert nb.pipeline().spec.connections["lake"].url == "data"
    nb.ok("PGPASSWORD = 'leaked'")
    nb.ok("%etl connect shop postgresql://me:${PGPASSWORD}@localhost/shop")
    assert nb.pipeline().spec.connections["shop"].url == "postgresql://me:${PGPASSWORD}@localhost/shop"


# --- the whole pipeline ----------------------------------------------------------------------


def test_run_reruns_everything_in_dag_order_and_records_the_run(nb: Notebook, workdir: Path) -> None:
    # Declared out of order on purpose: the load cell first, then what it needs.
    nb.ok("start_date = '2026-01-01'")
    setup(nb, REVENUE, "%%etl check revenue\n- not_null: [customer_id]")
    nb.ok("%etl load revenue --to lake --path out/revenue.parquet --mode replace")
    result = nb.ok("%etl run")
    (bundle,) = result.outputs  # the progress display, replaced by the run's summary
    lines = bundle["text/plain"].splitlines()
    assert lines[0].startswith("run ")
    assert " of 'notebook': success in " in lines[0]
    assert [line.split()[1] for line in lines[3:]] == [
        "orders",
        "rates",
        "revenue",
        "check:revenue",
        "load:revenue:lake:out/revenue.parquet",
    ]
    runs = nb.pipeline().store.list_runs("notebook")
    assert [r.status for r in runs] == ["success"]
    assert runs[0].params == {"start_date": "2026-01-01"}
    table = nb.ok("%etl runs --limit 5").outputs[0]
    assert table["text/plain"].splitlines()[0] == "1 recent run of 'notebook'"
    assert runs[0].id in table["text/plain"]
    assert runs[0].id in table["text/html"]


def test_run_only_and_from_run_part_of_the_pipeline(nb: Notebook) -> None:
    nb.ok("start_date = '2026-01-01'")
    setup(nb, REVENUE, "%%etl transform top\nSELECT * FROM revenue ORDER BY revenue_eur DESC LIMIT 1")
    only = nb.ok("%etl run --only revenue").outputs[0]["text/plain"]
    assert [line.split()[1] for line in only.splitlines()[3:]] == ["revenue"]
    start = nb.ok("%etl run --from revenue").outputs[0]["text/plain"]
    assert [line.split()[1] for line in start.splitlines()[3:]] == ["revenue", "top"]


def test_a_failed_run_fails_the_cell_with_one_message(nb: Notebook) -> None:
    setup(nb)
    nb("%%etl check orders\n- expression: amount < 100")  # declared; fails in its cell and in the run
    result = nb("%etl run")
    assert isinstance(result.error, EtlUsageError)
    assert result.message.startswith("CheckFailed: Check on 'orders' failed:\n")
    summary = result.outputs[0]["text/plain"]
    assert " of 'notebook': failed in " in summary.splitlines()[0]
    assert [r.status for r in nb.pipeline().store.list_runs("notebook")] == ["failed"]


def test_dag_is_a_mermaid_bundle_with_text_and_marks_failed_and_stale_steps(nb: Notebook) -> None:
    nb.ok("start_date = '2026-01-01'")
    setup(nb, REVENUE)
    nb.ok("%%etl transform top\nSELECT * FROM revenue LIMIT 1")
    nb("%%etl check top\n- expression: revenue_eur < 0")  # fails
    nb.ok("%%etl extract orders --from lake\npath: orders.csv")  # newer than revenue and top
    (bundle,) = nb.ok("%etl dag").outputs
    assert set(bundle) == {"text/vnd.mermaid", "text/plain"}
    mermaid = bundle["text/vnd.mermaid"]
    assert mermaid.startswith("flowchart LR\n")
    assert '["revenue"]' in mermaid
    assert "classDef failed" in mermaid
    assert bundle["text/plain"].splitlines() == [
        "orders",
        "rates",
        "revenue    <- orders, rates  [stale]",
        "top        <- revenue  [stale]",
        "check top  <- top  [failed]",
    ]
    nb.ok("%etl run --only revenue")
    assert nb.ok("%etl dag").outputs[0]["text/plain"].splitlines()[2:4] == [
        "revenue    <- orders, rates",
        "top        <- revenue  [stale]",
    ]


def test_a_cell_run_again_replaces_its_table_and_a_failed_run_leaves_none(nb: Notebook) -> None:
    nb.ok("%%etl transform t\nSELECT range AS n FROM range(3)")
    nb.ok("%%etl transform u\nSELECT sum(n) AS total FROM t")
    again = nb.ok("%%etl transform t\nSELECT range AS n FROM range(5)")
    assert again.text().splitlines()[0].startswith("transform t: 5 rows \u00d7 1 column in ")
    assert nb.pipeline().table("t")["n"].to_list() == [0, 1, 2, 3, 4]
    failed = nb("%%etl transform t\nSELECT nope FROM range(3)")
    assert failed.message.startswith("PipelineError: SQL error in transform 't' at line 1, column 8: ")
    assert nb("%etl show t").message == (
        "PipelineError: Step 't' has no output yet: run its cell or %etl run first."
    )
    assert "which has not run in this session yet" in nb("%%etl transform u\nSELECT sum(n) FROM t").message
    nb.ok("%%etl transform t\nSELECT 7 AS n")
    assert nb.pipeline().table("t").to_dicts() == [{"n": 7}]


def test_reset_drops_tables_and_keeps_declarations(nb: Notebook) -> None:
    setup(nb)
    result = nb.ok("%etl reset")
    assert result.text() == (
        "reset 'notebook': tables dropped; 1 connections and 2 steps still declared "
        "(run them again with %etl run)."
    )
    assert nb("%etl show orders").message == (
        "PipelineError: Step 'orders' has no output yet: run its cell or %etl run first."
    )
    nb.ok("%etl run")
    assert nb.pipeline().table("orders").height == 8


def test_params_lists_the_parameters_steps_use(nb: Notebook) -> None:
    nb.ok("start_date = '2026-01-01'")
    setup(nb, REVENUE)
    assert nb.ok("%etl params").text() == "1 parameter:\n  - start_date = '2026-01-01' (used by revenue)"


def test_current_returns_the_pipeline_the_cells_built(nb: Notebook) -> None:
    import etl_nb

    setup(nb)
    pipeline = etl_nb.current()
    assert list(pipeline.spec.connections) == ["lake"]
    assert [s.name for s in pipeline.spec.steps] == ["orders", "rates"]  # type: ignore[union-attr]
    assert pipeline.table("rates").columns == ["currency", "rate"]


# --- mistakes: one message each, earlier outputs intact -------------------------------------

BAD_CELLS = [
    (
        "%etl extrct orders",
        "SpecError: Unknown verb 'extrct'. Did you mean 'extract'? Verbs: connect, extract, transform, "
        "check, load, run, dag, runs, show, export, reset, params.",
    ),
    (
        "%%etl extract rates --form lake\npath: fx/rates_*.csv",
        "SpecError: extract 'rates': Unknown option '--form' for extract. Did you mean '--from'? "
        "Options of extract: --cache-ttl, --from, --incremental, --on-drift.",
    ),
    (
        "%etl run --limit 3",
        "SpecError: Unknown option '--limit' for run. Options of run: --from, --only.",
    ),
    (
        "%%etl extract rates --from lak\npath: fx/rates_*.csv",
        "PipelineError: Step 'rates' reads from connection 'lak', which is not declared. "
        "Did you mean 'lake'? Declare it first: %etl connect lak URL",
    ),
    (
        "%%etl transform revenue\nSELECT * FROM ordrs",
        "PipelineError: Step 'revenue' reads table 'ordrs' but no step or connection makes it. "
        "Did you mean 'orders'?",
    ),
    (
        "%%etl transform revenue\nSELECT * FROM order",
        "SpecError: SQL error in transform 'revenue' at line 1, column 15: "
        'syntax error at or near "order".',
    ),
    (
        "%%etl transform revenue\nSELECT id,\n       amount * rat AS eur\nFROM orders",
        "PipelineError: SQL error in transform 'revenue' at line 2, column 17: Binder Error: Referenced "
        'column "rat" not found in FROM clause! Candidate bindings: "created_at", "amount", "status"',
    ),
    (
        "%%etl extract rates --from lake\npath: [fx/rates_*.csv\nformat: csv",
        "SpecError: The body of extract 'rates' is not valid YAML at line 2, column 7: expected ',' or ']', "
        "but got ':'. Check the indentation and that each 'key: value' is on its own line.",
    ),
    (
        "%%etl transform 2revenue\nSELECT 1",
        "SpecError: '2revenue' is not a valid step name: use letters, digits and underscores, starting "
        "with a letter or underscore (for example 'daily_orders').",
    ),
    (
        "%%etl transform revenue\nSELECT * FROM orders WHERE created_at >= {{ start_date }}",
        "MissingParameter: Step 'revenue' uses the parameter {{ start_date }} but it has no value. "
        "Define it in the parameters cell (start_date = ...) and run that cell first.",
    ),
    (
        "%etl show nope",
        "PipelineError: There is no step 'nope' that makes a table. Steps: orders.",
    ),
    (
        "%etl load orders --to lake --path out.parquet --mode upsert",
        "SpecError: Unknown --mode 'upsert' for load 'orders'. Modes: append, replace, merge.",
    ),
    (
        "%%etl check orders\n- expression: amount < 100",
        "CheckFailed: Check on 'orders' failed:\n"
        "  - expression(amount < 100): 2 of 8 rows break 'amount < 100'\n"
        "      {'id': 1, 'customer_id': 101, 'amount': 120.5, 'currency': 'USD', 'status': 'paid', "
        "'created_at': '2026-01-03'}\n"
        "      {'id': 4, 'customer_id': 103, 'amount': 210.0, 'currency': 'USD', 'status': 'refunded', "
        "'created_at': '2026-01-09'}\n"
        "Fix the data or the step, or use '%%etl check orders --warn' to report without failing.",
    ),
]


@pytest.mark.parametrize(("cell", "message"), BAD_CELLS, ids=[c.split("\n")[0] for c, _ in BAD_CELLS])
def test_a_user_mistake_prints_one_message_and_keeps_earlier_outputs(
    nb: Notebook, cell: str, message: str
) -> None:
    nb.ok("%etl connect lake data")
    nb.ok("%%etl extract orders --from lake\npath: orders.csv")
    result = nb(cell)
    assert isinstance(result.error, EtlUsageError)
    assert result.message == message
    assert "Traceback" not in result.stdout
    assert ANSI.sub("", result.stdout).strip() == message
    assert nb.pipeline().table("orders").height == 8


def test_a_step_rejected_by_the_graph_is_not_declared(nb: Notebook) -> None:
    nb.ok("%etl connect lake data")
    nb("%%etl transform revenue\nSELECT * FROM ordrs")
    assert nb.pipeline().spec.steps == []


def test_a_bug_in_etl_nb_keeps_its_traceback(nb: Notebook, monkeypatch: pytest.MonkeyPatch) -> None:
    from etl_nb.pipeline import Pipeline

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("bug")

    nb.ok("%etl connect lake data")
    monkeypatch.setattr(Pipeline, "run_step", broken)
    result = nb("%%etl extract orders --from lake\npath: orders.csv")
    assert isinstance(result.error, RuntimeError)
    assert "Traceback" in result.stdout


def test_a_failing_cell_still_fails_for_ipython(nb: Notebook) -> None:
    result = nb.shell.run_cell("%etl extrct orders")
    assert not result.success


def test_an_unknown_parameter_suggests_a_user_variable_not_an_ipython_name(nb: Notebook) -> None:
    setup(nb)
    nb.ok("import os\nquarter = 'Q1'")
    for typo, hint in [("quartr", "quarter"), ("qit", None), ("oss", None), ("gett_ipython", None)]:
        failed = nb(f"%%etl transform picked\nSELECT * FROM orders WHERE status = {{{{ {typo} }}}}")
        assert failed.message.startswith(
            f"MissingParameter: Step 'picked' uses the parameter {{{{ {typo} }}}}"
        )
        assert ("Did you mean" in failed.message) == (hint is not None)
        assert hint is None or f"Did you mean '{hint}'?" in failed.message


def test_a_parameter_naming_a_module_or_function_is_refused_in_one_line(nb: Notebook) -> None:
    setup(nb)
    nb.ok("import os")
    for name, kind in [("os", "module"), ("quit", "ExitAutocall")]:
        failed = nb(f"%%etl transform picked\nSELECT * FROM orders WHERE status = {{{{ {name} }}}}")
        assert failed.message == (
            f"PipelineError: Step 'picked' uses the parameter {{{{ {name} }}}} but '{name}' is a {kind} "
            "in the notebook, not a value. Give it a string, number or date, or rename the parameter."
        )


def test_an_unknown_parameter_suggests_the_parameters_cell_even_before_it_ran(
    nb: Notebook, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbtools import write_notebook

    cells = [
        ("start_date = '2026-01-01'", ["parameters"]),
        *SETUP,
        REVENUE.replace("start_date", "start_dat"),
    ]
    monkeypatch.setenv("ETL_NB_NOTEBOOK", str(write_notebook(workdir / "saved.ipynb", cells)))
    setup(nb)
    failed = nb(cells[-1])  # type: ignore[arg-type]
    assert failed.message == (
        "MissingParameter: Step 'revenue' uses the parameter {{ start_dat }} but it has no value. "
        "Did you mean 'start_date'? Define it in the parameters cell (start_dat = ...) and run that cell "
        "first."
    )


def test_a_check_error_names_the_step_as_written_once(nb: Notebook) -> None:
    setup(nb)
    failed = nb("%%etl check orders\n- expression: amont > 1")
    assert failed.message.startswith("PipelineError: check 'orders': Check expression(amont > 1) cannot run")
    assert "check:orders" not in failed.message


def test_previews_name_column_types_as_duckdb_does_in_html_and_text(nb: Notebook) -> None:
    setup(nb)
    result = nb.ok(
        "%%etl transform typed\n"
        "SELECT id, status, created_at, created_at::TIMESTAMP AS at, amount, [id] AS ids FROM orders"
    )
    (bundle,) = result.outputs
    types = ["BIGINT", "VARCHAR", "DATE", "TIMESTAMP", "DOUBLE", "BIGINT[]"]
    names = ["id", "status", "created_at", "at", "amount", "ids"]
    for name, kind in zip(names, types, strict=True):
        assert f"<th>{name}<br><small>{kind}</small></th>" in bundle["text/html"]
    header = bundle["text/plain"].splitlines()[1:5]
    assert [cell.strip() for cell in header[3].strip("│").split("┆")] == types
    for polars_name in ("i64", "str", "f64", "Int64", "String", "datetime"):
        assert polars_name not in bundle["text/plain"] + bundle["text/html"]


@pytest.mark.parametrize(
    "line", ["%etl runs --limit 99999999999999999999", "%etl show orders --limit 10000000000"]
)
def test_an_overflowing_limit_is_one_line(nb: Notebook, line: str) -> None:
    setup(nb)
    failed = nb(line)
    assert failed.message.startswith("SpecError: --limit ")
    assert failed.message.endswith(" is too large: give at most 1,000,000,000.")
