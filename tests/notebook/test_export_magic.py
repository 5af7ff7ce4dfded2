"""``%etl export``: the saved notebook as a plain script or notebook, from inside it."""

from __future__ import annotations

from pathlib import Path

import pytest
from nbtools import Notebook, write_notebook

CELLS: list[str | tuple[str, list[str]]] = [
    ('start_date = "2026-01-01"', ["parameters"]),
    "%load_ext etl_nb",
    "%etl connect lake data",
    "%%etl extract orders --from lake\npath: orders.csv",
    "%%etl transform paid\nSELECT * FROM orders WHERE status = 'paid' AND created_at >= {{ start_date }}",
    "%etl load paid --to lake --path out/paid.parquet --mode replace",
]


def test_export_writes_the_saved_notebook_as_a_script_using_the_python_api(
    nb: Notebook, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ETL_NB_NOTEBOOK", str(write_notebook(workdir / "paid.ipynb", CELLS)))

    result = nb.ok("%etl export paid_script.py")

    script = (workdir / "paid_script.py").read_text()
    assert 'p.extract("orders", source="lake", path="orders.csv")' in script
    assert "{{ start_date }}" in script
    assert "%etl" not in script
    assert "exported the saved paid.ipynb to" in result.stdout


def test_export_defaults_to_a_plain_notebook_beside_the_source(
    nb: Notebook, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ETL_NB_NOTEBOOK", str(write_notebook(workdir / "paid.ipynb", CELLS)))

    nb.ok("%etl export")

    assert (workdir / "paid_plain.ipynb").is_file()


def test_export_without_a_known_notebook_says_how_to_export_from_a_terminal(nb: Notebook) -> None:
    result = nb("%etl export out.py")

    assert result.message == (
        "SpecError: %etl export cannot tell which notebook this is. Save it, then run in a terminal: "
        "etl-nb export NOTEBOOK.ipynb --to py"
    )
