"""How each step of a run keeps its output: the runner's storage decision, as one pure function.

- ``table``: the rows are stored in DuckDB. Needed when something reads them
  more than once or needs the rows themselves: several readers, a reader
  outside this run, a check, a Python transform, ``main.name`` (a CTE cannot
  be named so), an incremental extract (its new mark is read from the rows),
  or ``materialize="all"`` (a notebook cell previews every step).
  A SQL step nobody in the run reads (a terminal transform, an extract no
  step uses) is a table too: it is executed, not just bound, so a run is a
  success only if every step's SQL ran, and its rows are counted and there
  for ``p.table()`` (see docs/engine.md).
- ``fused``: a SQL step with one reader, kept as text and inlined into that
  reader as a CTE, so DuckDB plans the chain as one query.
- ``stream``: an extract whose source hands Arrow batches (rather than a
  SELECT DuckDB runs itself), read by exactly one statement: that statement
  scans the source's batches directly, once, and nothing is stored.

Sources decide at run time whether they give a SELECT or batches, so an
extract has both answers: ``Plan.storage(name)`` for a SELECT and
``Plan.storage(name, batches=True)`` for batches.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from etl_nb.engine.dag import Dag
from etl_nb.spec import CheckStep, ExtractStep, LoadStep, Step, TransformStep

Materialize = Literal["auto", "all"]
Storage = Literal["table", "fused", "stream"]


@dataclass(frozen=True)
class Plan:
    """The storage of every extract and transform of one run."""

    sql: dict[str, Storage]  # when the step's rows come as a SELECT: table or fused
    batches: dict[str, Storage]  # when an extract's rows come as Arrow batches: table or stream

    def storage(self, name: str, *, batches: bool = False) -> Storage:
        """How step ``name`` keeps its output (``batches``: its source hands Arrow batches)."""
        return self.batches[name] if batches else self.sql[name]


def plan_run(
    dag: Dag,
    run: Iterable[str],
    *,
    materialize: Materialize = "auto",
    scans_rows_once: Callable[[LoadStep], bool] = lambda load: False,
    keep: Iterable[str] = (),
) -> Plan:
    """The storage of each extract and transform among ``run`` (node ids of ``dag``).

    ``scans_rows_once(load)`` says whether ``load``'s sink reads its rows in
    one pass (``Connector.scans_rows_once``), which lets an extract stream
    into it. ``keep`` names steps stored as tables whatever else holds (the
    cache copies or restores their rows: ``engine/cache.py``).
    """
    in_run = set(run)
    decide = _Decider(dag, in_run, materialize, scans_rows_once, frozenset(keep))
    sql: dict[str, Storage] = {}
    batches: dict[str, Storage] = {}
    for node in dag.nodes:
        step = dag.nodes[node]
        if node not in in_run or not isinstance(step, ExtractStep | TransformStep):
            continue
        if isinstance(step, TransformStep) and step.sql is None:
            sql[node] = "table"  # a Python transform's result is Arrow, stored as it comes
            continue
        as_table = decide.needs_table(node) or (isinstance(step, ExtractStep) and bool(step.incremental))
        read = bool(dag.downstream(node))
        # Nobody reads it: run it all the same (its SQL may fail only when it runs).
        sql[node] = "table" if as_table or not read else "fused"
        if isinstance(step, ExtractStep):
            streams = not as_table and decide.read_once_downstream(node)
            batches[node] = "stream" if streams else "table"
    return Plan(sql=sql, batches=batches)


@dataclass(frozen=True)
class _Decider:
    dag: Dag
    in_run: set[str]
    materialize: Materialize
    scans_rows_once: Callable[[LoadStep], bool]
    keep: frozenset[str] = frozenset()

    def needs_table(self, name: str, materialize: Materialize | None = None) -> bool:
        """Whether ``name``'s rows must be stored: read several times, or as rows, not as SQL."""
        if (materialize or self.materialize) == "all" or name in self.keep:
            return True
        readers = self.dag.downstream(name)
        if len(readers) > 1 or any(r not in self.in_run for r in readers):
            return True  # read several times, or later by a step outside this run
        if any(_qualified_read(self.dag.nodes[r], name) for r in readers):
            return True  # `main.name` cannot find a CTE: keep a real table
        return any(isinstance(self.dag.nodes[r], CheckStep) for r in readers) or any(
            isinstance(s := self.dag.nodes[r], TransformStep) and s.sql is None for r in readers
        )

    def read_once_downstream(self, name: str) -> bool:
        """Whether one statement reads ``name``'s rows: a SQL transform stored as a table, or a
        load into a sink that scans its rows once, possibly through fused SQL transforms."""
        node = name
        while len(readers := self.dag.downstream(node)) == 1:
            reader = self.dag.nodes[readers[0]]
            if isinstance(reader, LoadStep):
                return self.scans_rows_once(reader)
            if not isinstance(reader, TransformStep) or reader.sql is None:
                return False
            if self.needs_table(reader.name, "auto"):
                return True  # CREATE TABLE ... AS reads it once (a CTE used twice is materialised)
            node = reader.name
        return False


def _qualified_read(reader: Step, name: str) -> bool:
    """Whether ``reader``'s SQL names step ``name`` with a schema (``main.name``)."""
    if not isinstance(reader, TransformStep) or reader.sql is None:
        return False
    pattern = r'\b(?:main|memory|temp)\s*\.\s*"?' + re.escape(name) + r"\b"
    return re.search(pattern, reader.sql, re.IGNORECASE) is not None
