"""What the export writes for each part of the grammar, and that it runs and reads back."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import nbformat
import polars as pl
import pytest
from exporttools import NOTEBOOKS, REPO, python_run, ruff, write_notebook

from etl_nb.notebook.export import export_notebook, render_script
from etl_nb.notebook.reader import read_notebook

# Every verb and option of the grammar; it needs servers to run, so it is only rendered and read.
WIDE = [
    "md:# Shop\n\nOrders from the shop database and users from its API.",
    "%load_ext etl_nb",
    ('start_date = "2026-01-01"\nlimit = 5\nverbose = False\nregions = ["eu", "us"]', ["parameters"]),
    'host = "localhost"\nregion = "eu"',
    "%etl connect shop postgresql://${PGUSER}:${PGPASSWORD}@{host}/shop",
    "%%etl connect api https://api.example.com\n"
    "headers: {Accept: application/json}\n"
    "auth: {type: bearer, token: '${API_TOKEN}'}\n"
    "timeout: 10",
    "%%etl extract orders --from shop --incremental updated_at\n"
    "SELECT id, amount, updated_at FROM orders\n"
    "WHERE created_at >= {{ start_date }} AND note <> 'a\\b'",
    "%%etl extract users --from api\n"
    "path: /users\n"
    "params: {since: 2026-01-01, region: '{{ region }}'}\n"
    "records: data.items\n"
    "paginate: {type: page, param: page, size_param: per_page, size: 100}",
    "%%etl transform joined\nSELECT o.*, u.name FROM orders o JOIN users u ON o.id = u.id",
    "%%etl check joined --warn\n"
    "- not_null: id\n"
    "- accepted_values: {column: name, values: [a, b]}\n"
    "- row_count: {min: 1, max: 1000}",
    "%etl load joined --to shop --table analytics.joined --mode merge --key id,name",
    "%etl run --only orders,joined",
    "%etl show joined --limit 5",
    "%etl dag\n%etl runs --limit 3\n%etl reset\n%etl params",
]


def _wide(tmp_path: Path) -> Path:
    return write_notebook(tmp_path / "shop.ipynb", WIDE)


def test_each_statement_becomes_one_api_call_with_secrets_and_parameters_kept(tmp_path: Path) -> None:
    script = export_notebook(_wide(tmp_path), to="py").read_text()

    assert 'p.connect("shop", f"postgresql://${{PGUSER}}:${{PGPASSWORD}}@{host}/shop")' in script
    assert 'auth={"type": "bearer", "token": "${API_TOKEN}"}' in script
    assert "WHERE created_at >= {{ start_date }} AND note <> 'a\\b'\n" in script  # raw string, as written
    assert 'query=r"""' in script
    assert 'incremental="updated_at"' in script
    assert '"since": dt.date(2026, 1, 1), "region": "{{ region }}"' in script
    assert 'p.check(\n    "joined",' in script
    assert "warn=True" in script
    assert 'p.load("joined", to="shop", table="analytics.joined", mode="merge", key=["id", "name"])' in script
    assert (
        'result = p.run(params={"start_date": start_date, "region": region}, only=["orders", "joined"])'
        in script
    )
    assert 'print(p.table("joined").head(5))' in script
    assert "print(p.dag().mermaid())" in script
    assert "etl-nb runs --pipeline shop" in script
    assert "p.reset()" in script
    assert "%etl" not in script.replace("# %etl", "")
    assert "load_ext" not in script
    # After a partial run, %etl show needs every step's output, which the notebook's cells had made.
    assert script.count("p.run(") == 2
    assert script.index("p.run(params") < script.index('print(p.table("joined").head(5))')
    assert "python shop.py --start-date 2026-01-01 --limit 5\n    python shop.py --help" in script
    # parameters: typed options with the parameters cell as defaults
    assert 'parser.add_argument("--limit", type=int, default=limit)' in script
    assert (
        'parser.add_argument("--verbose", action=argparse.BooleanOptionalAction, default=verbose)' in script
    )
    assert 'parser.add_argument("--regions", type=json.loads, default=regions)' in script
    ast.parse(script)


def test_wide_export_passes_ruff(tmp_path: Path) -> None:
    for to in ("py", "ipynb"):
        written = export_notebook(_wide(tmp_path), to=to)  # type: ignore[arg-type]
        config = ["--config", str(REPO / "pyproject.toml")]
        for command in (["check", *config, str(written)], ["format", "--check", *config, str(written)]):
            done = subprocess.run([str(ruff()), *command], capture_output=True, text=True, check=False)
            assert done.returncode == 0, done.stdout + done.stderr


def test_wide_export_reads_back_as_the_same_pipeline(tmp_path: Path) -> None:
    source = _wide(tmp_path)
    exported = read_notebook(export_notebook(source, to="ipynb"))
    original = read_notebook(source)

    assert exported.problems == []
    assert [s.model_dump(exclude={"cell"}) for s in exported.spec.steps] == [
        s.model_dump(exclude={"cell"}) for s in original.spec.steps
    ]
    assert exported.spec.connections.keys() == original.spec.connections.keys()
    assert exported.spec.connections["api"].options == original.spec.connections["api"].options
    assert exported.edges == original.edges


PYTHON_STEPS = [
    "%load_ext etl_nb",
    ('threshold = 50\nlabel = "big"', ["parameters"]),
    "%etl connect lake data",
    "%%etl extract orders --from lake\npath: orders.csv",
    "%%etl transform big --python\n"
    'orders.filter(pl.col("amount") > threshold).with_columns(tag=pl.lit(label))',
    "%%etl transform counted --python\n"
    "threshold = threshold * 1  # reads and rebinds a notebook name: stays code in a string\n"
    'big.select(pl.len().alias("n"), pl.lit(threshold).alias("above"))',
    "%%etl check big\n- row_count: {min: 1}",
    "%etl load big --to lake --path out/big.parquet --mode replace",
    "%etl load counted --to lake --path out/counted.csv --mode replace",
    "%who",
    'import etl_nb\n\nprint("rows:", etl_nb.current().table("big").height)',
]


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "data").mkdir()
    (folder / "data" / "orders.csv").write_bytes((NOTEBOOKS / "data" / "orders.csv").read_bytes())
    return folder


def test_python_transforms_run_as_functions_or_code_and_the_script_runs_the_pipeline(lake: Path) -> None:
    script_path = export_notebook(write_notebook(lake / "steps.ipynb", PYTHON_STEPS), to="py")
    script = script_path.read_text()

    assert "def big(orders):\n    return orders.filter(" in script
    assert 'p.transform("big", python=big)' in script
    assert 'python="""\nthreshold = threshold * 1' in script
    assert '"threshold": threshold' in script  # the code-in-a-string step gets the value it reads
    assert "# %who  (IPython only)" in script
    assert "import etl_nb" not in script
    # The run the notebook's cells did implicitly comes before the cell that reads a step's output.
    assert script.index("result = p.run(") < script.index('p.table("big")')

    done = python_run(script_path, "--threshold", "100", "--label", "large", cwd=lake.parent)

    assert done.returncode == 0, done.stderr
    orders = pl.read_csv(lake / "data" / "orders.csv")
    expected = orders.filter(pl.col("amount") > 100)
    big = pl.read_parquet(lake / "data" / "out" / "big.parquet")
    assert big["id"].to_list() == expected["id"].to_list()
    assert set(big["tag"]) == {"large"}
    counted = pl.read_csv(lake / "data" / "out" / "counted.csv")
    assert counted.to_dicts() == [{"n": expected.height, "above": 100}]
    assert f"rows: {expected.height}" in done.stdout


def test_the_script_finds_the_notebook_folder_when_written_elsewhere(lake: Path) -> None:
    source = write_notebook(lake / "steps.ipynb", PYTHON_STEPS)
    (lake / "build").mkdir()
    script = export_notebook(source, to="py", output=lake / "build" / "steps.py")

    assert 'base_dir=Path(__file__).parent / ".."' in script.read_text()
    assert python_run(script, cwd=lake.parent).returncode == 0
    assert (lake / "data" / "out" / "big.parquet").exists()


def test_a_notebook_without_run_is_run_once_at_the_end() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%etl connect lake data"),
        nbformat.v4.new_code_cell("%etl load orders --to lake --path out.csv"),
        nbformat.v4.new_code_cell("%%etl extract orders --from lake\npath: orders.csv"),
    ]

    script = render_script(nb, name="tiny")

    assert script.rstrip().endswith("result = p.run()\nresult.raise_for_status()\nprint(result)")
    assert script.count("p.run(") == 1
    assert "import argparse" not in script  # no parameters cell, no options


def test_generated_names_step_aside_for_the_notebooks_own() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("p = 3\nresult = 'mine'"),
        nbformat.v4.new_code_cell("%etl connect lake data"),
        nbformat.v4.new_code_cell("%%etl extract orders --from lake\npath: orders.csv"),
        nbformat.v4.new_code_cell("%etl run"),
    ]

    script = render_script(nb, name="names")

    assert 'pipeline = Pipeline("names"' in script
    assert 'pipeline.extract("orders", source="lake", path="orders.csv")' in script
    assert "run_result = pipeline.run()" in script
