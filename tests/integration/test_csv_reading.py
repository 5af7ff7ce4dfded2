"""CSV files read the way pandas and R users expect: missing markers, decimal commas, hints."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from etl_nb import Pipeline

# The shape of palmerpenguins' penguins.csv: NA for a missing measure or sex.
PENGUINS = """\
species,island,bill_length_mm,body_mass_g,sex,year
Adelie,Torgersen,39.1,3750,male,2007
Adelie,Torgersen,NA,NA,NA,2007
Gentoo,Biscoe,46.1,4500,female,2008
Chinstrap,Dream,N/A,3700,,2009
Gentoo,Biscoe,NaN,NULL,null,2009
"""


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    folder = tmp_path / "lake"
    folder.mkdir()
    (folder / "penguins.csv").write_text(PENGUINS)
    return folder


@pytest.fixture
def pipeline(lake: Path) -> Pipeline:
    p = Pipeline("csv", base_dir=lake)
    p.connect("lake", ".")
    return p


def test_na_markers_are_missing_values_and_numeric_columns_stay_numeric(pipeline: Pipeline) -> None:
    pipeline.extract("penguins", source="lake", path="penguins.csv")
    pipeline.transform("measured", sql="SELECT * FROM penguins WHERE bill_length_mm IS NOT NULL")
    pipeline.check("penguins", [{"not_null": ["sex"]}], warn=True)
    result = pipeline.run().raise_for_status()
    penguins = pipeline.table("penguins")
    assert str(penguins.schema["bill_length_mm"]) == "Float64"
    assert str(penguins.schema["body_mass_g"]) == "Int64"
    assert penguins["sex"].null_count() == 3
    assert pipeline.table("measured").height == 2
    assert result.steps["check:penguins"].status == "warned"


def test_a_marker_first_seen_past_the_type_sample_is_missing_not_a_failure(
    pipeline: Pipeline, lake: Path
) -> None:
    lines = ["id,mass"] + [f"{i},{i * 1.5}" for i in range(25_000)]
    lines[22_001], lines[23_001] = "22000,NA", "23000,N/A"  # past DuckDB's 20,480-row sample
    (lake / "big.csv").write_text("\n".join(lines) + "\n")
    pipeline.extract("big", source="lake", path="big.csv")
    pipeline.load("big", to="lake", path="out/big.parquet")
    result = pipeline.run().raise_for_status()
    assert result.steps["load:big:lake:out/big.parquet"].rows == 25_000
    written = duckdb.sql(f"SELECT typeof(mass), count(mass) FROM '{lake}/out/big.parquet' GROUP BY 1")
    assert written.fetchall() == [("DOUBLE", 24_998)]


def test_a_semicolon_file_with_decimal_commas_reads_as_numbers(pipeline: Pipeline, lake: Path) -> None:
    semi = "species;bill;year\nAdelie;39,1;2007\nGentoo;46,5;2008\nChinstrap;NA;2009\n"
    (lake / "semi.csv").write_text(semi)
    pipeline.extract(
        "semi", source="lake", path="semi.csv", options={"delimiter": ";", "decimal_separator": ","}
    )
    pipeline.run().raise_for_status()
    assert pipeline.table("semi")["bill"].to_list() == [39.1, 46.5, None]


def test_nullstr_replaces_the_default_markers(pipeline: Pipeline, lake: Path) -> None:
    (lake / "dash.csv").write_text("id,note\n1,NA\n2,-\n")
    pipeline.extract("dash", source="lake", path="dash.csv", options={"nullstr": ["-"]})
    pipeline.run().raise_for_status()
    assert pipeline.table("dash")["note"].to_list() == ["NA", None]


def test_a_text_column_of_numbers_warns_with_the_token_and_the_option(pipeline: Pipeline, lake: Path) -> None:
    rows = [f"{i},{'?' if i == 7 else i * 2}" for i in range(40)]
    (lake / "odd.csv").write_text("id,mass\n" + "\n".join(rows) + "\n")
    pipeline.extract("odd", source="lake", path="odd.csv")
    result = pipeline.run().raise_for_status()
    step = result.steps["odd"]
    assert step.status == "warned"
    assert step.error is not None
    assert "Column 'mass'" in step.error
    assert "'?'" in step.error
    assert "nullstr" in step.error


def test_decimal_commas_without_the_option_get_a_hint(pipeline: Pipeline, lake: Path) -> None:
    (lake / "semi.csv").write_text("species;bill\nAdelie;39,1\nGentoo;46,5\nChinstrap;40,0\n")
    pipeline.extract("semi", source="lake", path="semi.csv", options={"delimiter": ";"})
    result = pipeline.run().raise_for_status()
    assert result.steps["semi"].error is not None
    assert "decimal_separator: ','" in result.steps["semi"].error


def test_types_set_a_column_type(pipeline: Pipeline) -> None:
    pipeline.extract("penguins", source="lake", path="penguins.csv", options={"types": {"year": "VARCHAR"}})
    pipeline.run().raise_for_status()
    assert pipeline.table("penguins")["year"].to_list()[0] == "2007"
