"""How each step keeps its output: a table, a view, fused into its one reader, or a one-pass stream."""

from __future__ import annotations

from etl_nb.engine.dag import build_dag
from etl_nb.engine.plan import Plan, plan_run
from etl_nb.spec import Command, LoadStep, PipelineSpec, parse_cell


def _plan(*cells: tuple[str, str | None], run: list[str] | None = None, **options: object) -> Plan:
    spec = PipelineSpec(name="p")
    spec.add(parse_cell("connect lake ./data", None))  # type: ignore[arg-type]
    spec.add(parse_cell("connect db postgresql://localhost/db", None))  # type: ignore[arg-type]
    for line, body in cells:
        statement = parse_cell(line, body)
        assert not isinstance(statement, Command)
        spec.add(statement)
    dag = build_dag(spec)
    return plan_run(dag, run if run is not None else list(dag.nodes), **options)  # type: ignore[arg-type]


ORDERS = ("extract orders --from lake", "path: orders.csv")
DB_ORDERS = ("extract orders --from db", "SELECT * FROM orders")


def _to_db(load: LoadStep) -> bool:
    return load.to == "db"


def test_a_transform_with_one_sql_reader_is_fused_into_it() -> None:
    plan = _plan(
        ORDERS,
        ("transform paid", "SELECT * FROM orders WHERE amount > 0"),
        ("transform total", "SELECT sum(amount) AS total FROM paid"),
    )
    assert plan.storage("orders") == "fused"
    assert plan.storage("paid") == "fused"


def test_a_step_nobody_reads_is_executed_as_a_table_so_a_run_fails_if_its_sql_does() -> None:
    plan = _plan(ORDERS, ("transform total", "SELECT count(*) AS n FROM orders"))
    assert plan.storage("total") == "table"


def test_a_step_read_by_two_steps_is_a_table() -> None:
    plan = _plan(
        ORDERS,
        ("transform a", "SELECT * FROM orders"),
        ("transform b", "SELECT * FROM orders"),
    )
    assert plan.storage("orders") == "table"
    assert plan.storage("a") == "table"


def test_a_checked_step_is_a_table() -> None:
    plan = _plan(ORDERS, ("check orders", "- not_null: [id]"))
    assert plan.storage("orders") == "table"


def test_a_step_read_by_python_is_a_table_and_a_python_step_always_is() -> None:
    plan = _plan(ORDERS, ("transform big --python", "orders.filter(pl.col('amount') > 10)"))
    assert plan.storage("orders") == "table"
    assert plan.storage("big") == "table"


def test_a_step_named_with_its_schema_is_a_table_because_a_cte_cannot_be() -> None:
    plan = _plan(ORDERS, ("transform a", "SELECT * FROM main.orders"))
    assert plan.storage("orders") == "table"


def test_an_incremental_extract_is_a_table() -> None:
    plan = _plan(
        ("extract orders --from lake --incremental updated_at", "path: orders.csv"),
        ("transform a", "SELECT * FROM orders"),
    )
    assert plan.storage("orders") == "table"
    assert plan.storage("orders", batches=True) == "table"


def test_materialize_all_makes_every_step_a_table() -> None:
    plan = _plan(
        ORDERS,
        ("transform a", "SELECT * FROM orders"),
        ("transform b", "SELECT * FROM a"),
        materialize="all",
    )
    assert set(plan.sql.values()) == {"table"}


def test_a_step_read_later_by_a_step_outside_the_run_is_a_table() -> None:
    plan = _plan(ORDERS, ("transform a", "SELECT * FROM orders"), run=["orders"])
    assert plan.storage("orders") == "table"
    assert "a" not in plan.sql


def test_batches_stream_into_a_load_whose_sink_reads_them_once() -> None:
    plan = _plan(DB_ORDERS, ("load orders --to db --table copy", None), scans_rows_once=_to_db)
    assert plan.storage("orders", batches=True) == "stream"


def test_batches_stream_through_fused_transforms_into_a_one_pass_load() -> None:
    plan = _plan(
        DB_ORDERS,
        ("transform paid", "SELECT * FROM orders WHERE amount > 0"),
        ("load paid --to db --table paid", None),
        scans_rows_once=_to_db,
    )
    assert plan.storage("orders", batches=True) == "stream"
    assert plan.storage("paid") == "fused"


def test_batches_are_stored_when_the_sink_may_read_them_twice() -> None:
    plan = _plan(DB_ORDERS, ("load orders --to lake --path out.parquet", None), scans_rows_once=_to_db)
    assert plan.storage("orders", batches=True) == "table"
    assert plan.storage("orders") == "fused"


def test_batches_stream_into_a_transform_stored_as_a_table() -> None:
    plan = _plan(
        DB_ORDERS,
        ("transform paid", "SELECT * FROM orders WHERE amount > 0"),
        ("check paid", "- not_null: [id]"),
    )
    assert plan.storage("paid") == "table"
    assert plan.storage("orders", batches=True) == "stream"


def test_batches_nobody_reads_are_stored() -> None:
    plan = _plan(DB_ORDERS)
    assert plan.storage("orders", batches=True) == "table"
    assert plan.storage("orders") == "table"
