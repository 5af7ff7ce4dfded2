"""``%etl params`` as a form: fields from the parameters cell, Run starts a real recorded run."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from etl_nb.notebook.forms import ParamsForm, show_params_form
from etl_nb.store import RunStore

REPO = Path(__file__).resolve().parents[2]
RUN_DEADLINE = 120  # seconds a quickstart run may take on a busy machine


@pytest.fixture
def quickstart(etl_home: Path) -> Path:
    """The quickstart notebook and its data in the test's project folder."""
    shutil.copy(REPO / "notebooks" / "quickstart.ipynb", etl_home / "quickstart.ipynb")
    shutil.copytree(REPO / "notebooks" / "data", etl_home / "data", ignore=shutil.ignore_patterns("output"))
    return etl_home / "quickstart.ipynb"


def _notebook(path: Path, parameters: str) -> Path:
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell("%%etl transform t\nSELECT {{ limit }} AS n")
    nbformat.write(nbformat.v4.new_notebook(cells=[cell, body]), path)
    return path


def test_the_form_has_a_field_per_parameter_filled_with_the_kernels_value_else_the_default(
    quickstart: Path,
) -> None:
    form = ParamsForm(quickstart, {"start_date": "2026-02-01"}, follow=False)
    assert form.values() == {"start_date": "2026-02-01", "data_dir": "data"}


def test_a_boolean_parameter_is_a_checkbox(tmp_path: Path) -> None:
    form = ParamsForm(_notebook(tmp_path / "nb.ipynb", "limit = 10\nfull = False"), follow=False)
    assert type(form.fields["full"]).__name__ == "Checkbox"
    assert form.values() == {"limit": "10", "full": False}


def test_run_starts_a_recorded_run_with_the_forms_values_and_shows_how_it_ended(quickstart: Path) -> None:
    form = ParamsForm(quickstart, follow=False)
    form.fields["start_date"].value = "2026-01-05"
    form.button.click()
    assert form.run_id is not None
    deadline = time.monotonic() + RUN_DEADLINE
    while not form.show_status(form.run_id):
        assert time.monotonic() < deadline, form.status.value
        time.sleep(0.25)
    record = RunStore().get_run(form.run_id)
    assert record is not None
    assert (record.status, record.trigger, record.params["start_date"]) == ("success", "manual", "2026-01-05")
    assert f"run {form.run_id}: success" in form.status.value
    assert "rows" in form.status.value


def test_a_value_that_cannot_take_the_defaults_type_is_refused_in_the_form(tmp_path: Path) -> None:
    form = ParamsForm(_notebook(tmp_path / "nb.ipynb", "limit = 10"), follow=False)
    form.fields["limit"].value = "ten"
    assert form.run() is None
    assert "limit" in form.status.value
    assert RunStore().list_runs() == []


def test_an_unsaved_notebook_gets_a_sentence_instead_of_a_form() -> None:
    shown: list[Any] = []
    assert show_params_form(None, {}, display=shown.append) is None
    assert "Save the notebook" in shown[0].text


def _connect_form(tmp_path: Path, name: str = "lake") -> tuple[Any, list[str]]:
    from etl_nb.notebook.forms import ConnectForm

    written: list[str] = []
    return ConnectForm(name, base_dir=tmp_path, set_next_input=written.append), written


def test_a_bare_connect_line_is_the_one_that_shows_the_form() -> None:
    from etl_nb.notebook.forms import connect_form_name

    assert connect_form_name("connect shop", None) == "shop"
    assert connect_form_name(" connect shop ", "") == "shop"
    assert connect_form_name("connect shop ./data", None) is None
    assert connect_form_name("connect shop", "url: https://x") is None
    assert connect_form_name("extract shop --from x", None) is None


def test_a_folder_connection_is_tested_and_saved_as_a_connect_line_below(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "orders.csv").write_text("id\n1\n")
    form, written = _connect_form(tmp_path)
    form.location.value = "./data"
    assert form.test_button.click() is None
    assert "1 file or folder (orders.csv)" in form.status.value
    form.save_button.click()
    assert written == ["%etl connect lake ./data"]


def test_a_database_connection_takes_its_credentials_as_variable_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    sqlite3.connect(tmp_path / "shop.db").execute("CREATE TABLE orders (id int)").connection.commit()
    form, written = _connect_form(tmp_path, "shop")
    form.kind.value = "database"
    form.location.value = f"sqlite:///{tmp_path / 'shop.db'}"
    assert "1 table (orders)" in form.test()
    form.location.value = "postgresql://db.internal:5432/shop"
    form.user_var.value = "PGUSER"
    form.secret_var.value = "${PGPASSWORD}"
    assert form.save() == "%etl connect shop postgresql://${PGUSER}:${PGPASSWORD}@db.internal:5432/shop"
    assert written == [form.cell()]


def test_the_form_refuses_a_password_value_and_a_secret_that_is_not_a_name(tmp_path: Path) -> None:
    form, written = _connect_form(tmp_path, "shop")
    form.kind.value = "database"
    form.location.value = "postgresql://me:hunter2@db/shop"
    assert form.save() is None
    assert "Do not write the password" in form.status.value
    form.location.value = "postgresql://db/shop"
    form.secret_var.value = "hunter 2!"
    assert form.save() is None
    assert "not an environment variable name" in form.status.value
    assert written == []


def test_a_rest_api_connection_is_written_as_a_cell_with_a_bearer_token_reference(tmp_path: Path) -> None:
    form, written = _connect_form(tmp_path, "api")
    form.kind.value = "http"
    form.location.value = "https://api.example.com/v1"
    form.secret_var.value = "API_TOKEN"
    form.save()
    assert written == [
        '%%etl connect api\nurl: https://api.example.com/v1\nauth: {type: bearer, token: "${API_TOKEN}"}'
    ]
    from etl_nb.spec import parse_cell

    statement = parse_cell("connect api", written[0].split("\n", 1)[1])
    assert statement.url == "https://api.example.com/v1"  # type: ignore[union-attr]


def test_testing_a_folder_that_does_not_exist_says_so(tmp_path: Path) -> None:
    form, _ = _connect_form(tmp_path)
    form.location.value = "./missing"
    assert "is not a folder" in form.test()


WIDGET = "application/vnd.jupyter.widget-view+json"


def test_in_a_kernel_a_bare_connect_and_etl_params_show_their_forms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import papermill
    from nbtools import write_notebook

    notebook = write_notebook(
        tmp_path / "forms.ipynb",
        ["%load_ext etl_nb", ("limit = 10", ["parameters"]), "%etl connect shop", "%etl params"],
    )
    monkeypatch.setenv("ETL_NB_NOTEBOOK", str(notebook))  # the kernel learns its notebook's path
    output = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(notebook), str(output), cwd=str(tmp_path), progress_bar=False)
    cells = nbformat.read(output, as_version=4).cells
    assert any(WIDGET in o.get("data", {}) for o in cells[2].outputs), cells[2].outputs
    assert any(WIDGET in o.get("data", {}) for o in cells[3].outputs), cells[3].outputs
