"""Errors name the step that holds the mistake, not the step that happened to read it."""

from __future__ import annotations

from pathlib import Path

import pytest

from etl_nb import Pipeline
from etl_nb.connectors import Connector, WriteRequest, registry
from etl_nb.errors import ConnectorError


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    folder = tmp_path / "lake"
    folder.mkdir()
    return folder


def _pipeline(lake: Path) -> Pipeline:
    p = Pipeline("blame", base_dir=lake)
    p.connect("lake", ".")
    return p


def test_a_csv_value_that_does_not_convert_is_the_extracts_error_with_file_line_and_column(
    lake: Path,
) -> None:
    lines = ["id,mass"] + [f"{i},{i * 1.5}" for i in range(25_000)]
    lines[22_001] = "22000,unknown"  # past the 20,480 rows DuckDB types the column from
    (lake / "penguins.csv").write_text("\n".join(lines) + "\n")
    p = _pipeline(lake)
    p.extract("penguins", source="lake", path="penguins.csv")
    p.transform("heavy", sql="SELECT * FROM penguins WHERE mass > 10")
    p.load("heavy", to="lake", path="out/sel.parquet")
    result = p.run()
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.startswith("Extract 'penguins' cannot read 'penguins.csv' line 22,002, column 'mass'")
    assert "'unknown'" in result.error
    assert "nullstr" in result.error
    assert "Cannot write" not in result.error
    assert len(result.error.splitlines()) == 1
    assert result.steps["penguins"].status == "failed"
    assert result.steps["load:heavy:lake:out/sel.parquet"].status == "skipped"
    assert not (lake / "out").exists()


def test_a_csv_value_error_in_a_stored_extract_names_the_file_line_and_column(lake: Path) -> None:
    lines = ["id,mass"] + [f"{i},{i}" for i in range(21_000)] + ["21000,n/a"]
    (lake / "m.csv").write_text("\n".join(lines) + "\n")
    p = _pipeline(lake)
    p.extract("m", source="lake", path="m.csv")
    p.check("m", [{"not_null": ["id"]}])
    result = p.run()
    assert result.error is not None
    assert result.error.startswith("Extract 'm' cannot read 'm.csv' line 21,002, column 'mass'")


@pytest.fixture
def refusing_sink(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sink that starts reading the rows, then finds its database full."""
    monkeypatch.setattr(registry, "_registered", dict(registry._registered))

    @registry.register("refusing")
    class Refusing(Connector):
        def write(self, request: WriteRequest) -> object:  # type: ignore[override]
            reader = request.batches()
            reader.read_next_batch()
            raise ConnectorError(
                "Cannot connect to 'db': FATAL: sorry, too many clients already.", step=request.load.step
            )


@pytest.mark.usefixtures("refusing_sink")
def test_a_load_whose_connection_is_refused_says_so_not_a_sql_error_upstream(lake: Path) -> None:
    (lake / "t.csv").write_text("id\n1\n2\n")
    p = _pipeline(lake)
    p.connect("db", "x", type="refusing")
    p.extract("t", source="lake", path="t.csv")
    p.transform("u", sql="SELECT id + 1 AS id FROM t")
    p.load("u", to="db", table="u")
    result = p.run()
    assert result.error is not None
    assert "too many clients" in result.error
    assert "SQL error" not in result.error
    assert result.steps["load:u:db:u"].status == "failed"
    assert result.steps["t"].status == "success"
