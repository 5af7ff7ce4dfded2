"""A files pipeline costs what it uses: no Polars or pyarrow loaded, each CSV sniffed as few times as can be.

The peak memory of `bench/files.py` is compared with DuckDB alone (issue 13): a run
that reads CSV and writes Parquet must not pay for libraries only Python steps and
database or API sources need. What is saved must not change what the run records.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from etl_nb import Pipeline

ORDERS = "id,amount,price,day,currency\n1,10,1.50,2026-01-02,EUR\n2,NA,2.25,2026-01-03,USD\n"


def _files_pipeline(folder: Path) -> Pipeline:
    (folder / "orders.csv").write_text(ORDERS)
    p = Pipeline("footprint", base_dir=folder, store=f"sqlite:///{folder / 'store.db'}")
    p.connect("lake", ".")
    p.extract("orders", source="lake", path="orders.csv", options={"types": {"price": "DECIMAL(10,2)"}})
    p.transform("by_currency", sql="SELECT currency, sum(amount) AS amount FROM orders GROUP BY ALL")
    p.load("by_currency", to="lake", path="out/by_currency.parquet")
    return p


def test_a_files_run_loads_neither_polars_nor_pyarrow(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from tests.integration.test_files_footprint import _files_pipeline\n"
        f"p = _files_pipeline(Path({str(tmp_path)!r}))\n"
        "p.run().raise_for_status()\n"
        "p.close()\n"
        "print('loaded:' + ','.join(m for m in ('polars', 'pyarrow') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "loaded:"
    assert (tmp_path / "out" / "by_currency.parquet").is_file()


def test_a_fused_csv_extract_records_the_columns_a_stored_one_does(tmp_path: Path) -> None:
    # Fused (read by one step), its columns come from the connector's own DESCRIBE of the read.
    fused = _files_pipeline(tmp_path)
    result = fused.run()
    result.raise_for_status()
    fused_columns = result.steps["orders"].detail["columns"]
    # materialize="all" stores it as a table, whose columns are read from the table.
    stored = _files_pipeline(tmp_path).run(materialize="all")
    stored_columns = stored.steps["orders"].detail["columns"]
    expected = {"id": "BIGINT", "amount": "BIGINT", "price": "DECIMAL(10,2)", "day": "DATE"}
    expected["currency"] = "VARCHAR"
    assert fused_columns == expected
    assert stored_columns == expected


def test_schema_drift_of_a_fused_csv_extract_is_still_seen(tmp_path: Path) -> None:
    _files_pipeline(tmp_path).run().raise_for_status()
    p = _files_pipeline(tmp_path)
    (tmp_path / "orders.csv").write_text(ORDERS.replace("id,amount", "id,total"))
    p.transform("by_currency", sql="SELECT currency, sum(total) AS amount FROM orders GROUP BY ALL")
    result = p.run()
    orders = result.steps["orders"]
    assert orders.status == "warned"
    assert "drift" in orders.detail
    assert "amount" in (orders.error or "")
    assert "total" in (orders.error or "")


def _wide_csv(path: Path, rows: int, odd: dict[int, str]) -> None:
    """A CSV whose rows are about 1 kB wide, so that the reader's 8 MB buffers hold ~8,000 rows."""
    pad = "x" * 1000
    path.write_text("n,pad\n" + "".join(f"{odd.get(i, i)},{pad}\n" for i in range(rows)))


def test_the_smaller_csv_buffers_type_columns_from_the_whole_sample(tmp_path: Path) -> None:
    # Row 15,000 is past the first 8 MB buffer but inside DuckDB's 20,480-row type sample.
    _wide_csv(tmp_path / "wide.csv", 30_000, {15_000: "oops"})
    p = Pipeline("wide", base_dir=tmp_path)
    p.connect("lake", ".")
    p.extract("wide", source="lake", path="wide.csv")
    p.transform("counted", sql="SELECT count(n) AS n FROM wide")
    result = p.run()
    result.raise_for_status()
    assert result.steps["wide"].detail["columns"]["n"] == "VARCHAR"
    assert p.table("counted")["n"].to_list() == [30_000]


def test_a_bad_value_far_into_a_csv_is_still_named_by_its_line(tmp_path: Path) -> None:
    _wide_csv(tmp_path / "wide.csv", 40_000, {35_000: "oops"})
    p = Pipeline("wide", base_dir=tmp_path)
    p.connect("lake", ".")
    p.extract("wide", source="lake", path="wide.csv")
    p.transform("counted", sql="SELECT sum(n) AS n FROM wide")
    result = p.run()
    assert result.status == "failed"
    assert "line 35,002, column 'n': 'oops'" in (result.error or "")  # the header is line 1


def test_a_longer_max_line_size_is_kept(tmp_path: Path) -> None:
    (tmp_path / "long.csv").write_text("a,b\n1," + "y" * (3 * 2**20) + "\n")
    p = Pipeline("long", base_dir=tmp_path)
    p.connect("lake", ".")
    p.extract("long", source="lake", path="long.csv", options={"max_line_size": 4 * 2**20})
    p.transform("width", sql="SELECT length(b) AS width FROM long")
    p.run().raise_for_status()
    assert p.table("width")["width"].to_list() == [3 * 2**20]
