"""The notebook reader: an .ipynb file -> PipelineSpec, parameters and problems, without a kernel."""

from __future__ import annotations

from pathlib import Path

import pytest
from nbtools import write_notebook

from etl_nb.errors import SpecError
from etl_nb.notebook.cells import etl_magics
from etl_nb.notebook.reader import pipeline_name, read_notebook
from etl_nb.spec import Command, ExtractStep, TransformStep

GOOD = [
    "# md\n# Revenue",
    "%load_ext etl_nb",
    ('start_date = "2026-01-01"\nlimit: int = 5\nlow, high = 0, 10\ntoday = date.today()', ["parameters"]),
    "%etl connect lake {folder}",
    "%%etl extract orders --from lake\npath: orders.csv",
    "%%etl transform revenue\nSELECT customer_id, sum(amount) AS total FROM orders "
    "WHERE created_at >= {{ start_date }} GROUP BY ALL",
    "%%etl check revenue\n- not_null: [customer_id]",
    "x = 1\n%etl load revenue --to lake --path out/revenue.parquet --mode replace\nprint(x)",
    "%etl run\n%etl dag",
]


def test_reader_turns_a_notebook_into_steps_edges_and_parameters(tmp_path: Path) -> None:
    cells = list(GOOD)
    cells.insert(3, 'folder = "data"')
    result = read_notebook(write_notebook(tmp_path / "Daily revenue-v2.ipynb", cells))
    assert result.problems == []
    assert result.ok
    assert result.name == "Daily_revenue_v2"
    assert result.parameters_cell == 2
    assert result.parameters == {"start_date": "2026-01-01", "limit": 5, "low": 0, "high": 10}
    assert result.parameter_names == ["start_date", "limit", "low", "high", "today"]
    assert result.spec.parameters == result.parameters
    assert result.spec.connections["lake"].url == "data"
    assert [s.verb for s in result.spec.steps] == ["extract", "transform", "check", "load"]
    orders = result.spec.steps[0]
    assert isinstance(orders, ExtractStep)
    assert (orders.path, orders.cell) == ("orders.csv", 5)
    assert result.edges == [
        ("orders", "revenue"),
        ("revenue", "check:revenue"),
        ("revenue", "load:revenue:lake:out/revenue.parquet"),
        ("check:revenue", "load:revenue:lake:out/revenue.parquet"),
    ]
    assert [c.verb for c in result.commands] == ["run", "dag"]
    assert all(isinstance(c, Command) for c in result.commands)
    assert [c.index for c in result.cells] == [4, 5, 6, 7, 8, 9, 9]


def test_a_bad_cell_is_a_problem_and_the_other_steps_remain(tmp_path: Path) -> None:
    cells = [
        "%etl connect lake data",
        "%%etl extract orders --from lake\npath: orders.csv",
        "%%etl extract rates --from lake\npath: [broken",
        "%%etl transfrm revenue\nSELECT 1",
        "%%etl transform revenue\nSELECT * FROM orders JOIN rates USING (currency)",
        "%%etl check revenue\n- not_null: [id]",
        "%%etl transform total\nSELECT count(*) AS n FROM orders",
        "%etl load total --to warehouse --table total",
    ]
    result = read_notebook(write_notebook(tmp_path / "broken.ipynb", cells))
    assert [str(p) for p in result.problems] == [
        "cell 3: The body of extract 'rates' is not valid YAML at line 1, column 14: expected ',' or ']', "
        "but got '<stream end>'. Check the indentation and that each 'key: value' is on its own line.",
        "cell 4: Unknown verb 'transfrm'. Did you mean 'transform'? Verbs: connect, extract, transform, "
        "check, load, run, dag, runs, show, export, reset, params.",
        "cell 5: Step 'revenue' reads table 'rates' but no step or connection makes it.",
        "cell 6: The check of 'revenue' names a step that does not exist.",
        "cell 8: Step 'total' loads to connection 'warehouse', which is not declared. "
        "Declare it first: %etl connect warehouse URL",
    ]
    assert not result.ok
    assert [getattr(s, "name", None) or s.verb for s in result.spec.steps] == ["orders", "total"]
    assert result.edges == [("orders", "total")]
    assert [c.error is not None for c in result.cells] == [
        False,
        False,
        True,
        True,
        False,
        False,
        False,
        False,
    ]


def test_out_of_order_cells_give_the_same_graph(tmp_path: Path) -> None:
    cells = [
        "%etl load revenue --to lake --path out.parquet",
        "%%etl transform revenue\nSELECT * FROM orders",
        "%%etl extract orders --from lake\npath: orders.csv",
        "%etl connect lake data",
    ]
    result = read_notebook(write_notebook(tmp_path / "reversed.ipynb", cells))
    assert result.problems == []
    assert result.dag().order() == ["orders", "revenue", "load:revenue:lake:out.parquet"]


def test_a_step_declared_twice_is_a_problem_and_the_later_cell_wins(tmp_path: Path) -> None:
    cells = [
        "%etl connect lake data",
        "%%etl transform t\nSELECT 1 AS a",
        "%%etl transform t\nSELECT 2 AS a",
    ]
    result = read_notebook(write_notebook(tmp_path / "twice.ipynb", cells))
    assert [str(p) for p in result.problems] == [
        "cell 3: 't' is declared again (first in cell 2); this later cell wins. "
        "Give one of them another name."
    ]
    (step,) = result.spec.steps
    assert isinstance(step, TransformStep)
    assert step.sql == "SELECT 2 AS a"


def test_a_variable_the_reader_cannot_know_is_a_problem(tmp_path: Path) -> None:
    cells = ["import os\nfolder = os.getcwd()", "%etl connect lake {folder}", "%etl connect shop ${SHOP_URL}"]
    result = read_notebook(write_notebook(tmp_path / "vars.ipynb", cells))
    assert [str(p) for p in result.problems] == [
        "cell 2: '%etl connect lake {folder}' uses {folder}, which the reader cannot know without running "
        "the notebook. Use a literal, or a name assigned a literal in the parameters cell."
    ]
    assert result.spec.connections["shop"].url == "${SHOP_URL}"


def test_the_reader_never_runs_code_in_an_expansion(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    cells = [f"%etl connect lake {{open({str(marker)!r}, 'w')}}"]
    result = read_notebook(write_notebook(tmp_path / "evil.ipynb", cells))
    assert not marker.exists()
    assert len(result.problems) == 1


def test_magics_are_found_as_ipython_reads_them() -> None:
    source = 'text = "%etl run"\nif True:\n    %etl run --only a,b \\\n  --from c\n'
    _, found = etl_magics(source)
    assert found == [("run --only a,b    --from c", None)]
    _, cell = etl_magics("\n%%etl check x\n- not_null: [a]")
    assert cell == [("check x", "- not_null: [a]\n")]


def test_a_notebook_without_etl_cells_is_not_a_pipeline(tmp_path: Path) -> None:
    result = read_notebook(write_notebook(tmp_path / "plain.ipynb", ["print(1)", "x = (", "!ls"]))
    assert not result.is_pipeline
    assert result.problems == []


def test_a_file_that_is_not_a_notebook_is_a_spec_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.ipynb"
    path.write_text("not json")
    with pytest.raises(SpecError, match="Cannot read notebook"):
        read_notebook(path)


@pytest.mark.parametrize(
    ("path", "name"),
    [("a/quickstart.ipynb", "quickstart"), ("2026 sales.ipynb", "_2026_sales"), ("-.ipynb", "notebook")],
)
def test_the_pipeline_name_is_the_file_stem_as_an_identifier(path: str, name: str) -> None:
    assert pipeline_name(path) == name


def test_reader_pipeline_runs_with_paths_relative_to_the_notebook(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "orders.csv").write_text("id,amount\n1,5\n2,7\n")
    cells = [
        ("minimum = 6", ["parameters"]),
        "%etl connect lake data",
        "%%etl extract orders --from lake\npath: orders.csv",
        "%%etl transform big\nSELECT * FROM orders WHERE amount >= {{ minimum }}",
    ]
    result = read_notebook(write_notebook(tmp_path / "p.ipynb", cells))
    pipeline = result.pipeline(store=f"sqlite:///{tmp_path / 'runs.db'}")
    assert pipeline.run().status == "success"
    assert pipeline.table("big")["id"].to_list() == [2]
