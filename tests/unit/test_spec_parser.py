"""The ``%%etl`` grammar (DESIGN.md section 2): every verb, option and error."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl_nb.errors import SpecError
from etl_nb.spec import (
    CheckStep,
    Command,
    ConnectionSpec,
    ExtractStep,
    LoadStep,
    PipelineSpec,
    TransformStep,
    parse_cell,
)

# --- connect ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("postgresql://${PGUSER}:${PGPASSWORD}@localhost:5432/shop", "postgres"),
        ("postgres://localhost/shop", "postgres"),
        ("sqlite:///shop.db", "sql"),
        ("duckdb:///lake.duckdb", "sql"),
        ("mysql+pymysql://root@127.0.0.1/test", "sql"),
        ("https://api.example.com/v1", "http"),
        ("http://127.0.0.1:8000", "http"),
        ("./data", "files"),
        ("/srv/lake", "files"),
        # Known only once the reference is resolved, when the connection opens.
        ("${DATABASE_URL}", "auto"),
        ("${LAKE}/2026", "auto"),
        ("${SCHEME}://host/db", "auto"),
        ("sqlite:///${HOME}/shop.db", "sql"),
    ],
)
def test_connect_infers_the_connection_type_from_the_url(url: str, kind: str) -> None:
    spec = parse_cell(f"connect shop {url}")
    assert isinstance(spec, ConnectionSpec)
    assert (spec.name, spec.type, spec.url) == ("shop", kind, url)


def test_connect_keeps_secret_references_unresolved() -> None:
    spec = parse_cell("connect shop postgresql://${PGUSER}:${PGPASSWORD}@localhost/shop")
    assert isinstance(spec, ConnectionSpec)
    assert "${PGPASSWORD}" in spec.url


def test_connect_body_gives_url_type_and_options() -> None:
    body = "url: https://api.example.com\nheaders:\n  Accept: application/json\ntimeout: 5\n"
    spec = parse_cell("connect api", body)
    assert isinstance(spec, ConnectionSpec)
    assert spec.type == "http"
    assert spec.url == "https://api.example.com"
    assert spec.options == {"headers": {"Accept": "application/json"}, "timeout": 5}


def test_connect_body_type_overrides_the_inferred_type() -> None:
    spec = parse_cell("connect shop sqlite:///x.db", "type: postgres\nschema: analytics\n")
    assert isinstance(spec, ConnectionSpec)
    assert spec.type == "postgres"
    assert spec.options == {"schema": "analytics"}


def test_connect_body_type_wins_over_a_secret_reference_url() -> None:
    spec = parse_cell("connect shop ${DATABASE_URL}", "type: postgres\n")
    assert isinstance(spec, ConnectionSpec)
    assert spec.type == "postgres"


def test_connect_without_url_says_how_to_give_one() -> None:
    with pytest.raises(SpecError, match=r"Connection 'shop' needs a URL or folder: %etl connect shop"):
        parse_cell("connect shop")


def test_connect_body_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(SpecError, match="must be YAML keys such as 'url:'"):
        parse_cell("connect shop", "- just\n- a list\n")


# --- extract ----------------------------------------------------------------------------


def test_extract_with_sql_body_keeps_the_query_and_its_parameters() -> None:
    body = "SELECT id, amount FROM orders\nWHERE created_at >= {{ start_date }} AND x < {{end}}\n"
    spec = parse_cell("extract orders --from shop --incremental updated_at", body)
    assert isinstance(spec, ExtractStep)
    assert spec.source == "shop"
    assert spec.incremental == "updated_at"
    assert spec.query is not None
    assert spec.query.startswith("SELECT id")
    assert spec.parameters == ["start_date", "end"]
    assert spec.path is None


def test_extract_with_yaml_body_reads_path_format_and_options() -> None:
    body = "path: fx/rates_*.txt\nformat: csv\noptions:\n  delimiter: ';'\n"
    spec = parse_cell("extract rates --from lake", body)
    assert isinstance(spec, ExtractStep)
    assert (spec.path, spec.format, spec.options, spec.query) == (
        "fx/rates_*.txt",
        "csv",
        {"delimiter": ";"},
        None,
    )


def test_extract_http_body_reads_params_records_and_paginate() -> None:
    body = (
        "path: /orders\nparams: {status: paid}\nrecords: data.items\n"
        "paginate: {type: cursor, param: cursor, next: meta.next_cursor}\n"
    )
    spec = parse_cell("extract orders --from api", body)
    assert isinstance(spec, ExtractStep)
    assert spec.params == {"status": "paid"}
    assert spec.records == "data.items"
    assert spec.paginate == {"type": "cursor", "param": "cursor", "next": "meta.next_cursor"}


def test_extract_option_with_equals_sign_is_read() -> None:
    spec = parse_cell("extract orders --from=shop", "SELECT 1")
    assert isinstance(spec, ExtractStep)
    assert spec.source == "shop"


def test_extract_without_from_names_the_missing_option() -> None:
    with pytest.raises(
        SpecError, match=r"extract needs --from: for example %%etl extract orders --from shop"
    ):
        parse_cell("extract orders", "SELECT 1")


def test_extract_without_body_says_to_use_the_cell_form() -> None:
    with pytest.raises(SpecError, match=r"extract 'orders' needs a body: use the cell form"):
        parse_cell("extract orders --from shop")


def test_extract_unknown_body_key_suggests_the_right_one() -> None:
    with pytest.raises(SpecError) as info:
        parse_cell("extract rates --from lake", "path: a.csv\nformats: csv\n")
    assert "Unknown key 'formats' in the body of extract 'rates'. Did you mean 'format'?" in str(info.value)


def test_extract_unknown_format_lists_the_formats() -> None:
    with pytest.raises(SpecError, match=r"extract 'rates'.*format.*'csv', 'parquet', 'json' or 'ndjson'"):
        parse_cell("extract rates --from lake", "path: a.dat\nformat: xml\n")


def test_extract_malformed_yaml_body_gives_line_and_column() -> None:
    with pytest.raises(SpecError) as info:
        parse_cell("extract rates --from lake", "path: [a.csv\nformat: csv\n")
    message = str(info.value)
    assert "The body of extract 'rates' is not valid YAML at line" in message
    assert "Check the indentation" in message


def test_extract_yaml_body_with_numeric_keys_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match=r"Unknown key '1' in the body of extract 'rates'"):
        parse_cell("extract rates --from lake", "path: a.csv\n1: x\n")


# --- transform --------------------------------------------------------------------------


def test_transform_sql_body() -> None:
    spec = parse_cell("transform revenue", "SELECT customer_id, sum(amount) FROM orders GROUP BY ALL")
    assert isinstance(spec, TransformStep)
    assert spec.sql is not None
    assert spec.python is None


def test_transform_python_flag_makes_a_python_step() -> None:
    spec = parse_cell("transform big --python", "orders.filter(pl.col('amount') > 10)")
    assert isinstance(spec, TransformStep)
    assert spec.python == "orders.filter(pl.col('amount') > 10)"
    assert spec.sql is None


def test_a_switch_given_a_value_says_it_takes_none() -> None:
    with pytest.raises(SpecError, match="Option --python of transform is a switch and takes no value"):
        parse_cell("transform big --python=yes", "x")


def test_transform_with_empty_body_needs_a_body() -> None:
    with pytest.raises(SpecError, match="transform 'revenue' needs a body"):
        parse_cell("transform revenue", "   \n  ")


# --- check ------------------------------------------------------------------------------


def test_check_reads_every_rule_kind() -> None:
    body = """
- not_null: [customer_id, revenue_eur]
- unique: customer_id
- accepted_values: {column: status, values: [paid, open]}
- accepted_values: {currency: [EUR, USD]}
- row_count: {min: 1, max: 1000}
- expression: revenue_eur >= 0
"""
    spec = parse_cell("check revenue", body)
    assert isinstance(spec, CheckStep)
    assert spec.step == "revenue"
    assert not spec.warn
    assert [r.describe() for r in spec.rules] == [
        "not_null(customer_id, revenue_eur)",
        "unique(customer_id)",
        "accepted_values(status)",
        "accepted_values(currency)",
        "row_count(min=1, max=1000)",
        "expression(revenue_eur >= 0)",
    ]
    assert spec.rules[2].values == ["paid", "open"]
    assert spec.rules[3].values == ["EUR", "USD"]


def test_check_warn_flag() -> None:
    spec = parse_cell("check revenue --warn", "- row_count: {min: 1}")
    assert isinstance(spec, CheckStep)
    assert spec.warn


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("- not_nul: [id]", "Unknown check 'not_nul'. Did you mean 'not_null'?"),
        ("not_null: [id]", "A check body is a YAML list of rules, for example '- not_null: [id]'"),
        ("- not_null", "Check rule 'not_null' needs a value, e.g. '- not_null: ...'"),
        ("- not_null: [1, 2]", "Check 'not_null' on 'revenue': give a column or a list of columns"),
        ("- row_count: {min: -1}", "row_count bounds are whole numbers of rows, 0 or more"),
        ("- row_count: {least: 1}", "write 'row_count: {min: 1}'"),
        ("- accepted_values: [a, b]", "write 'accepted_values: {column: status, values: [paid, open]}'"),
        ("- expression: ''", "write a SQL condition that must hold for every row"),
        ("- {not_null: [a], unique: [a]}", "Each check rule is one 'kind: value' item"),
        ("- unique: [a\n", "is not valid YAML at line"),
    ],
)
def test_check_errors_name_the_problem_and_the_fix(body: str, expected: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_cell("check revenue", body)
    assert expected in str(info.value)
    assert info.value.step == "revenue"


# --- load -------------------------------------------------------------------------------


def test_load_to_a_table_with_merge_and_a_compound_key() -> None:
    spec = parse_cell("load revenue --to shop --table analytics.revenue --mode merge --key customer_id,day")
    assert isinstance(spec, LoadStep)
    assert (spec.step, spec.to, spec.table, spec.path, spec.mode, spec.key) == (
        "revenue",
        "shop",
        "analytics.revenue",
        None,
        "merge",
        ["customer_id", "day"],
    )
    assert spec.target == "analytics.revenue"


def test_load_defaults_to_replace_so_reruns_never_duplicate() -> None:
    spec = parse_cell("load revenue --to lake --path out/revenue.parquet")
    assert isinstance(spec, LoadStep)
    assert (spec.mode, spec.path, spec.key) == ("replace", "out/revenue.parquet", [])


@pytest.mark.parametrize("mode", ["append", "replace", "merge"])
def test_load_accepts_each_mode(mode: str) -> None:
    key = " --key id" if mode == "merge" else ""
    spec = parse_cell(f"load revenue --to lake --path r.csv --mode {mode}{key}")
    assert isinstance(spec, LoadStep)
    assert spec.mode == mode


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("load revenue --to lake --path r.csv --mode upsert", "Unknown --mode 'upsert' for load 'revenue'."),
        ("load revenue --to lake --path r.csv --mode replce", "Did you mean 'replace'?"),
        ("load revenue --to lake --path r.csv --mode merge", "--mode merge needs --key COLUMN[,COLUMN]"),
        ("load revenue --to lake --path r.csv --key id", "--key only applies to --mode merge"),
        ("load revenue --to lake", "a load needs exactly one target: --table NAME"),
        ("load revenue --to lake --path r.csv --table t", "a load needs exactly one target"),
        ("load revenue --path r.csv", "load needs --to: for example %etl load revenue --to lake"),
        ("load revenue --to", "Option --to of load needs a value."),
        ("load revenue --to lake --pth r.csv", "Unknown option '--pth' for load. Did you mean '--path'?"),
        ("load revenue extra --to lake --path r.csv", "Unexpected 'extra' after load"),
    ],
)
def test_load_errors_name_the_problem_and_the_fix(line: str, expected: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_cell(line)
    assert expected in str(info.value)


def test_load_takes_no_body() -> None:
    with pytest.raises(SpecError, match="load takes no body; write it as one line: %etl load revenue"):
        parse_cell("load revenue --to lake --path r.csv", "SELECT 1")


# --- line commands ----------------------------------------------------------------------


def test_run_with_only_and_from() -> None:
    spec = parse_cell("run --only orders,revenue --from rates")
    assert isinstance(spec, Command)
    assert spec.options == {"only": ["orders", "revenue"], "from": "rates"}


def test_run_only_needs_step_names() -> None:
    with pytest.raises(SpecError, match=r"--only needs step names, e\.g\. --only orders,revenue"):
        parse_cell("run --only ,")


@pytest.mark.parametrize("verb", ["run", "dag", "runs", "reset"])
def test_bare_line_commands(verb: str) -> None:
    spec = parse_cell(verb)
    assert isinstance(spec, Command)
    assert (spec.verb, spec.target, spec.options) == (verb, None, {})


def test_runs_and_show_take_a_limit() -> None:
    runs = parse_cell("runs --limit 5")
    show = parse_cell("show revenue --limit 20")
    assert isinstance(runs, Command)
    assert isinstance(show, Command)
    assert runs.options == {"limit": 5}
    assert (show.target, show.options) == ("revenue", {"limit": 20})


@pytest.mark.parametrize("limit", ["0", "-3", "ten", "1.5"])
def test_limit_must_be_a_positive_whole_number(limit: str) -> None:
    with pytest.raises(SpecError, match=r"--limit must be a whole number above 0, e.g. --limit 20"):
        parse_cell(f"runs --limit={limit}")


def test_show_needs_a_step() -> None:
    with pytest.raises(SpecError, match="show needs STEP: for example %etl show revenue"):
        parse_cell("show")


def test_export_with_and_without_path() -> None:
    bare = parse_cell("export")
    to_py = parse_cell("export out/revenue.py --to py")
    assert isinstance(bare, Command)
    assert isinstance(to_py, Command)
    assert (bare.target, bare.options) == (None, {})
    assert (to_py.target, to_py.options) == ("out/revenue.py", {"to": "py"})


def test_export_to_an_unknown_format_is_refused() -> None:
    with pytest.raises(SpecError, match="Unknown export format '--to html': use --to py or --to ipynb"):
        parse_cell("export x --to html")


@pytest.mark.parametrize("verb", ["run", "dag", "runs", "show x", "export", "reset"])
def test_line_commands_take_no_body(verb: str) -> None:
    with pytest.raises(SpecError, match="takes no body; write it as one line"):
        parse_cell(verb, "something")


# --- errors common to every verb --------------------------------------------------------


def test_unknown_verb_suggests_the_closest() -> None:
    with pytest.raises(SpecError) as info:
        parse_cell("extrct orders --from shop", "SELECT 1")
    assert "Unknown verb 'extrct'. Did you mean 'extract'?" in str(info.value)
    assert "Verbs: connect, extract, transform, check, load" in str(info.value)


def test_empty_line_lists_the_verbs() -> None:
    with pytest.raises(SpecError, match=r"An empty %etl line does nothing\. Start with one of: connect"):
        parse_cell("   ")


def test_unclosed_quote_says_to_close_it() -> None:
    with pytest.raises(SpecError, match="Close the quote"):
        parse_cell("load revenue --to lake --path 'out/r.csv")


def test_quoted_option_values_may_hold_spaces() -> None:
    spec = parse_cell("load revenue --to lake --path 'out/my revenue.csv'")
    assert isinstance(spec, LoadStep)
    assert spec.path == "out/my revenue.csv"


@pytest.mark.parametrize("name", ["1orders", "daily-orders", "orders.x", "é"])
def test_invalid_step_names_are_refused_with_an_example(name: str) -> None:
    with pytest.raises(SpecError, match=rf"'{name}' is not a valid step name: .*'daily_orders'"):
        parse_cell(f"transform {name}", "SELECT 1")


def test_unknown_option_lists_the_options_of_the_verb() -> None:
    with pytest.raises(SpecError) as info:
        parse_cell("extract orders --from shop --incremetal updated_at", "SELECT 1")
    message = str(info.value)
    assert "Unknown option '--incremetal' for extract. Did you mean '--incremental'?" in message
    assert "Options of extract: --cache-ttl, --from, --incremental, --on-drift." in message


def test_errors_carry_the_cell_number() -> None:
    with pytest.raises(SpecError) as info:
        parse_cell("check revenue", "- nope: 1", cell=7)
    assert info.value.cell == 7


def test_a_step_and_a_connection_cannot_share_a_name() -> None:
    spec = PipelineSpec(name="p")
    connection = parse_cell("connect orders ./data")
    assert isinstance(connection, ConnectionSpec)
    spec.add(connection)
    step = parse_cell("transform orders", "SELECT 1")
    assert isinstance(step, TransformStep)
    with pytest.raises(SpecError, match=r"'orders' is already a connection; give the step another name\."):
        spec.add(step)


def test_redeclaring_a_step_replaces_it() -> None:
    spec = PipelineSpec(name="p")
    for sql in ("SELECT 1", "SELECT 2"):
        step = parse_cell("transform t", sql)
        assert isinstance(step, TransformStep)
        spec.add(step)
    assert len(spec.steps) == 1
    assert spec.tables()["t"].sql == "SELECT 2"


# --- parse_cell never raises anything but SpecError -------------------------------------

_VERB_WORDS = st.sampled_from(
    ["connect", "extract", "transform", "check", "load", "run", "dag", "runs", "show", "export", "reset"]
)
_OPTION_WORDS = st.sampled_from(
    [
        *("--from", "--to", "--table", "--path", "--mode", "--key", "--python", "--warn", "--limit"),
        *("--only", "--incremental", "--to=py", "--mode=merge", "merge", "orders", "x.csv", "0"),
        *("'", '"', "\\", "--"),
    ]
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.dates(),
    st.sampled_from(["not_null", "unique", "accepted_values", "row_count", "expression", "min", "max"]),
    st.sampled_from(["path", "format", "options", "params", "records", "paginate", "url", "type", "csv"]),
)
_YAML_DATA = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(_SCALARS.filter(lambda k: k is not None), inner, max_size=3),
    ),
    max_leaves=8,
)


def _yaml_text(data: object) -> str:
    return yaml.safe_dump(data, sort_keys=False)


_BODIES = st.one_of(
    st.none(),
    st.text(),
    _YAML_DATA.map(_yaml_text),
    _YAML_DATA.map(lambda d: "path: x.csv\n" + _yaml_text(d)),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    line=st.one_of(
        st.text(),
        st.builds(
            lambda verb, words: " ".join([verb, *words]),
            _VERB_WORDS,
            st.lists(st.one_of(_OPTION_WORDS, st.text(max_size=6)), max_size=6),
        ),
    ),
    body=_BODIES,
)
def test_parse_cell_raises_only_spec_error_on_any_input(line: str, body: str | None) -> None:
    message = "parsed"
    try:
        parse_cell(line, body)
    except SpecError as exc:
        message = str(exc)
    assert message  # an error is a sentence, never an empty message
