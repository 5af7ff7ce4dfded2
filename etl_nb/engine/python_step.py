"""Python transforms: run the user's code on Polars frames and take its result as Arrow.

Earlier steps are bound to their names as Polars DataFrames and ``pl`` is
Polars; the result is the code's last expression (or the function's return,
or a variable named after the step). An error in the user's code is one
sentence naming the step and the line.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import duckdb

from etl_nb.errors import EtlError, PipelineError
from etl_nb.spec import TransformStep

if TYPE_CHECKING:  # imported when a Python step runs
    import polars as pl
    import pyarrow as pa


def run_python(
    step: TransformStep, frames: dict[str, pl.DataFrame], params: Mapping[str, Any]
) -> pa.Table | pa.RecordBatchReader:
    """Run Python transform ``step`` on ``frames`` (its inputs by name); its result as Arrow."""
    return _as_arrow(step.name, _call_python(step, frames, params))


def _call_python(step: TransformStep, frames: dict[str, pl.DataFrame], params: Mapping[str, Any]) -> Any:
    """Run a Python transform; its result is the last expression (or its function's return)."""
    import polars as pl

    try:
        if step.function is not None:
            return step.function(**frames)
        return _exec_last_expression(step.name, step.python or "", {"pl": pl, **params, **frames})
    except EtlError:
        raise
    except Exception as exc:
        line = _user_line(exc, step.name)
        raise PipelineError(
            f"Python error in transform '{step.name}'{line}: {exc.__class__.__name__}: {exc}",
            step=step.name,
        ) from exc


def _exec_last_expression(name: str, code: str, namespace: dict[str, Any]) -> Any:
    tree = ast.parse(code)
    filename = f"<transform {name}>"
    last = tree.body[-1] if tree.body else None
    if isinstance(last, ast.Expr):
        exec(compile(ast.Module(body=tree.body[:-1], type_ignores=[]), filename, "exec"), namespace)
        return eval(compile(ast.Expression(body=last.value), filename, "eval"), namespace)
    exec(compile(tree, filename, "exec"), namespace)
    if name in namespace:
        return namespace[name]
    raise PipelineError(
        f"Python transform '{name}' must end with an expression that is its result (for example "
        f"'orders.filter(pl.col(\"amount\") > 0)'), or assign it to '{name}'.",
        step=name,
    )


def _user_line(exc: BaseException, name: str) -> str:
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == f"<transform {name}>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" at line {line}" if line else ""


def _as_arrow(name: str, result: Any) -> pa.Table | pa.RecordBatchReader:
    import polars as pl
    import pyarrow as pa

    if isinstance(result, pl.LazyFrame):
        result = result.collect()
    if isinstance(result, pl.DataFrame):
        return result.to_arrow()
    if isinstance(result, pa.Table | pa.RecordBatchReader):
        return result
    if isinstance(result, duckdb.DuckDBPyRelation):
        return result.to_arrow_table()
    raise PipelineError(
        f"Python transform '{name}' returned {type(result).__name__}; return a Polars DataFrame "
        "(or LazyFrame, or an Arrow table).",
        step=name,
    )
