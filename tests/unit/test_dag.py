"""Dependencies are inferred from SQL (DuckDB's parser) and Python free names, never declared."""

from __future__ import annotations

import polars as pl
import pytest

from etl_nb.engine.dag import build_dag, python_free_names, sql_tables
from etl_nb.errors import PipelineError, SpecError
from etl_nb.spec import CheckStep, Command, ExtractStep, LoadStep, PipelineSpec, TransformStep, parse_cell


def _spec(*cells: tuple[str, str | None]) -> PipelineSpec:
    spec = PipelineSpec(name="p")
    for line, body in cells:
        statement = parse_cell(line, body)
        assert not isinstance(statement, Command)
        spec.add(statement)
    return spec


def _with_sources(*names: str) -> list[tuple[str, str | None]]:
    return [("connect lake ./data", None)] + [(f"extract {n} --from lake", f"path: {n}.csv") for n in names]


# --- SQL ------------------------------------------------------------------------------


def test_join_using_finds_both_tables() -> None:
    # duckdb.get_table_names raises on USING; the DAG must not.
    assert sql_tables("SELECT * FROM orders o JOIN rates r USING (currency)") == ["orders", "rates"]


def test_a_cte_named_like_a_step_creates_no_edge() -> None:
    sql = "WITH orders AS (SELECT 1 AS id) SELECT * FROM orders JOIN rates USING (id)"
    assert sql_tables(sql) == ["rates"]


def test_a_cte_reads_the_tables_in_its_body() -> None:
    sql = (
        "WITH paid AS (SELECT * FROM orders WHERE status = 'paid') "
        "SELECT * FROM paid JOIN customers USING (id)"
    )
    assert sql_tables(sql) == ["orders", "customers"]


def test_a_cte_that_shadows_a_step_still_reads_that_step_in_its_own_body() -> None:
    # DuckDB binds the inner 'orders' to the table: the step must run first.
    sql = "WITH orders AS (SELECT * FROM orders WHERE amount > 0) SELECT * FROM orders"
    assert sql_tables(sql) == ["orders"]


def test_a_recursive_cte_is_not_a_table() -> None:
    sql = "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 3) SELECT * FROM t"
    assert sql_tables(sql) == []


def test_subqueries_in_from_select_and_where_are_found() -> None:
    sql = (
        "SELECT *, (SELECT max(rate) FROM rates) AS top FROM (SELECT * FROM orders) o "
        "WHERE customer_id IN (SELECT id FROM customers) AND EXISTS (SELECT 1 FROM refunds)"
    )
    assert sorted(sql_tables(sql)) == ["customers", "orders", "rates", "refunds"]


def test_union_reads_both_sides() -> None:
    assert sql_tables("SELECT * FROM orders UNION ALL BY NAME SELECT * FROM old_orders") == [
        "orders",
        "old_orders",
    ]


def test_quoted_and_schema_qualified_names() -> None:
    assert sql_tables('SELECT * FROM "order items"') == ["order items"]
    assert sql_tables("SELECT * FROM main.orders") == ["orders"]
    assert sql_tables("SELECT * FROM analytics.orders") == ["analytics.orders"]


def test_table_functions_are_not_tables() -> None:
    assert sql_tables("SELECT * FROM read_parquet('x.parquet') JOIN orders USING (id)") == ["orders"]


def test_parameters_inside_sql_do_not_break_parsing() -> None:
    sql = "SELECT * FROM orders WHERE created_at >= {{ start_date }} AND status = {{status}}"
    assert sql_tables(sql) == ["orders"]


def test_sql_syntax_error_gives_line_and_column() -> None:
    with pytest.raises(SpecError) as info:
        sql_tables("SELECT *\nFROM orders\nWHER x = 1", "revenue")
    message = str(info.value)
    assert message.startswith("SQL error in transform 'revenue' at line 3")
    assert info.value.step == "revenue"


def test_a_transform_must_be_one_select() -> None:
    with pytest.raises(SpecError, match=r"Transform 'revenue' must be one SELECT"):
        sql_tables("DELETE FROM orders", "revenue")
    with pytest.raises(SpecError, match=r"Transform 'revenue' holds 2 statements; a transform is one SELECT"):
        sql_tables("SELECT 1; SELECT 2", "revenue")


def test_dag_edges_follow_sql_joins_and_ctes() -> None:
    spec = _spec(
        *_with_sources("orders", "rates", "customers"),
        (
            "transform revenue",
            "WITH paid AS (SELECT * FROM orders WHERE status = 'paid')\n"
            "SELECT * FROM paid JOIN rates USING (currency) JOIN customers USING (customer_id)",
        ),
    )
    dag = build_dag(spec)
    assert sorted(dag.upstream("revenue")) == ["customers", "orders", "rates"]
    assert dag.order().index("revenue") == 3


def test_table_names_match_steps_case_insensitively_like_duckdb() -> None:
    spec = _spec(*_with_sources("orders"), ("transform big", 'SELECT * FROM ORDERS JOIN "Orders" USING (id)'))
    assert build_dag(spec).upstream("big") == ["orders"]


def test_checks_follow_their_step_and_loads_follow_the_checks() -> None:
    spec = _spec(
        *_with_sources("orders"),
        ("transform revenue", "SELECT * FROM orders"),
        ("load revenue --to lake --path out.parquet", None),
        ("check revenue", "- not_null: [id]"),
    )
    dag = build_dag(spec)
    load = "load:revenue:lake:out.parquet"
    assert set(dag.upstream(load)) == {"revenue", "check:revenue"}
    order = dag.order()
    assert order.index("check:revenue") < order.index(load)


def test_ties_keep_declaration_order() -> None:
    spec = _spec(*_with_sources("b", "a", "c"))
    assert build_dag(spec).order() == ["b", "a", "c"]


def test_unknown_table_suggests_the_closest_step() -> None:
    spec = _spec(*_with_sources("orders"), ("transform revenue", "SELECT * FROM ordrs"))
    with pytest.raises(PipelineError) as info:
        build_dag(spec)
    assert str(info.value) == (
        "Step 'revenue' reads table 'ordrs' but no step or connection makes it. Did you mean 'orders'?"
    )
    assert info.value.step == "revenue"


def test_a_step_named_like_an_sql_keyword_must_be_quoted() -> None:
    spec = _spec(*_with_sources("order"), ("transform total", "SELECT count(*) FROM order"))
    with pytest.raises(SpecError) as info:
        build_dag(spec)
    assert "'order' is an SQL keyword: write the step's name in double quotes (\"order\")" in str(info.value)
    quoted = _spec(*_with_sources("order"), ("transform total", 'SELECT count(*) FROM "order"'))
    assert build_dag(quoted).upstream("total") == ["order"]


def test_unknown_connection_is_named_with_the_fix() -> None:
    spec = _spec(("connect lake ./data", None), ("extract orders --from lak", "path: o.csv"))
    with pytest.raises(PipelineError) as info:
        build_dag(spec)
    message = str(info.value)
    assert "Step 'orders' reads from connection 'lak', which is not declared. Did you mean 'lake'?" in message
    assert "%etl connect lak URL" in message


def test_check_of_an_unknown_step_suggests_the_closest() -> None:
    spec = _spec(*_with_sources("orders"), ("check order", "- not_null: [id]"))
    with pytest.raises(
        PipelineError, match=r"The check of 'order' names a step that does not exist\. Did you"
    ):
        build_dag(spec)


def test_a_cycle_error_names_the_whole_cycle() -> None:
    spec = _spec(("transform a", "SELECT * FROM b"), ("transform b", "SELECT * FROM a"))
    dag = build_dag(spec)
    with pytest.raises(PipelineError) as info:
        dag.order()
    message = str(info.value)
    assert "The steps form a cycle:" in message
    assert "a -> b -> a" in message or "b -> a -> b" in message


def test_a_longer_cycle_names_every_step_in_it() -> None:
    spec = _spec(
        ("transform a", "SELECT * FROM c"),
        ("transform b", "SELECT * FROM a"),
        ("transform c", "SELECT * FROM b"),
        ("transform d", "SELECT 1 AS x"),
    )
    with pytest.raises(PipelineError) as info:
        build_dag(spec).order()
    cycle = str(info.value).split("cycle: ")[1].split(".")[0].split(" -> ")
    assert cycle[0] == cycle[-1]
    assert sorted(cycle[:-1]) == ["a", "b", "c"]


def test_a_step_reading_itself_is_a_cycle() -> None:
    spec = _spec(("transform a", "SELECT * FROM a"))
    with pytest.raises(PipelineError, match=r"cycle: a -> a"):
        build_dag(spec)


def test_mermaid_draws_every_node_and_edge() -> None:
    spec = _spec(*_with_sources("orders"), ("transform revenue", "SELECT * FROM orders"))
    text = build_dag(spec).mermaid()
    assert text.splitlines()[0] == "flowchart LR"
    assert '["orders"]' in text
    assert '["revenue"]' in text
    assert "n0 --> n1" in text


# --- Python ---------------------------------------------------------------------------


def test_python_free_names_include_step_frames() -> None:
    code = "orders.join(customers, on='customer_id').filter(pl.col('amount') > 0)"
    assert python_free_names(code) == ["orders", "customers", "pl"]


def test_python_rebinding_a_name_still_reads_the_step_first() -> None:
    assert python_free_names("orders = orders.filter(pl.col('a') > 0)\norders") == ["orders", "pl"]
    assert python_free_names("x = orders\nx = x.filter(pl.col('a') > 0)\nx") == ["orders", "pl"]


def test_python_local_names_are_not_dependencies() -> None:
    code = """
import polars as pl
from math import sqrt
def scale(df, factor=rates):
    return df * factor
big = [o for o in orders if o]
try:
    big
except Exception as error:
    error
scale(big)
"""
    assert python_free_names(code) == ["rates", "orders"]


def test_python_builtins_are_not_dependencies() -> None:
    assert python_free_names("len(orders) + sum([1]) + max(1, 2)") == ["orders"]


def test_python_syntax_error_names_step_and_line() -> None:
    with pytest.raises(SpecError, match=r"Python error in transform 'big' at line 2: "):
        python_free_names("x = 1\nx = (", "big")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("x = " + "+".join(["a"] * 20000), "the code is nested too deeply to read"),
        ("a\x00b", "source code string cannot contain null bytes"),
    ],
)
def test_python_that_cannot_be_read_is_a_spec_error(code: str, expected: str) -> None:
    with pytest.raises(SpecError) as info:
        python_free_names(code, "big")
    assert str(info.value).startswith("Python error in transform 'big'")
    assert expected in str(info.value)
    assert "line None" not in str(info.value)


def test_python_step_depends_on_the_steps_it_names() -> None:
    spec = _spec(
        *_with_sources("orders", "customers"),
        ("transform big --python", "orders.join(customers, on='id')\n"),
    )
    assert sorted(build_dag(spec).upstream("big")) == ["customers", "orders"]


def test_python_names_that_are_not_steps_are_ignored() -> None:
    spec = _spec(
        *_with_sources("orders"), ("transform big --python", "threshold = 3\norders.head(threshold)")
    )
    assert build_dag(spec).upstream("big") == ["orders"]


def test_function_transform_depends_on_its_argument_names() -> None:
    spec = _spec(*_with_sources("orders", "rates"))

    def enriched(orders: pl.DataFrame, rates: pl.DataFrame) -> pl.DataFrame:
        return orders.join(rates, on="currency")

    spec.add(TransformStep(name="enriched", function=enriched))
    assert build_dag(spec).upstream("enriched") == ["orders", "rates"]


def test_function_transform_with_an_unknown_argument_suggests_a_step() -> None:
    spec = _spec(*_with_sources("orders"))

    def bad(order: pl.DataFrame) -> pl.DataFrame:
        return order

    spec.add(TransformStep(name="bad", function=bad))
    with pytest.raises(
        PipelineError, match=r"takes argument 'order' but no step makes it. Did you mean 'orders'"
    ):
        build_dag(spec)


def test_step_kinds_in_the_dag() -> None:
    spec = _spec(
        *_with_sources("orders"),
        ("check orders", "- row_count: {min: 1}"),
        ("load orders --to lake --path o.parquet --mode replace", None),
    )
    nodes = build_dag(spec).nodes
    assert isinstance(nodes["orders"], ExtractStep)
    assert isinstance(nodes["check:orders"], CheckStep)
    assert isinstance(nodes["load:orders:lake:o.parquet"], LoadStep)


# --- choosing steps: --only and --from ------------------------------------------------


def _chain() -> PipelineSpec:
    return _spec(
        *_with_sources("orders"),
        ("transform paid", "SELECT * FROM orders WHERE amount > 0"),
        ("check paid", "- not_null: [id]"),
        ("load paid --to lake --path out/paid.parquet", None),
        ("transform total", "SELECT sum(amount) AS total FROM paid"),
    )


def test_only_takes_the_step_with_its_checks_and_loads_but_not_what_it_reads() -> None:
    dag = build_dag(_chain())
    assert dag.select(only=["paid"]) == {"paid", "check:paid", "load:paid:lake:out/paid.parquet"}


def test_from_takes_the_step_and_everything_after_it() -> None:
    dag = build_dag(_chain())
    assert dag.select(from_step="paid") == {"paid", "check:paid", "load:paid:lake:out/paid.parquet", "total"}


def test_choosing_a_step_that_makes_no_table_says_so() -> None:
    dag = build_dag(_chain())
    with pytest.raises(PipelineError, match="There is no step 'paidd' to run"):
        dag.select(only=["paidd"])


def test_ancestors_are_everything_a_step_reads() -> None:
    dag = build_dag(_chain())
    assert dag.ancestors({"total"}) == {"paid", "orders"}
