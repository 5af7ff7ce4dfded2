"""Parameters are checked before a kernel starts: unknown names and mistyped values are refused."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

from etl_nb.errors import SpecError
from etl_nb.runs.params import check_parameters

Run = subprocess.CompletedProcess[str]

PARAMS = (
    'min_year = 2020\nrate = 1.5\nverbose = False\nstart_date = "2026-01-01"\nlabel = "x"\nanything = None'
)


@pytest.fixture
def typed(project: Path, notebook: Callable[..., Path]) -> Path:
    return notebook(project / "typed.ipynb", "print(min_year, rate, verbose, start_date, label)", PARAMS)


def test_values_take_their_defaults_types(typed: Path) -> None:
    given = {"min_year": "2021", "rate": "2", "verbose": "true", "start_date": "2026-02-01", "label": "12"}

    assert check_parameters(typed, given) == {
        "min_year": 2021,
        "rate": 2.0,
        "verbose": True,
        "start_date": "2026-02-01",
        "label": "12",  # text stays text, though it looks like a number
    }
    assert check_parameters(typed, {"anything": "3"}) == {"anything": 3}  # no default type: papermill's
    assert check_parameters(typed, {"min_year": 2022}) == {"min_year": 2022}  # JSON values too


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        (
            "minyear",
            "2021",
            "Unknown parameter 'minyear' for notebook 'typed.ipynb'. Did you mean 'min_year'?",
        ),
        ("min_year", "twenty", "Parameter 'min_year' takes a whole number (its default is 2020); 'twenty'"),
        ("min_year", "1" * 100, "Parameter 'min_year' takes a whole number"),
        ("rate", "fast", "Parameter 'rate' takes a number"),
        ("verbose", "maybe", "Parameter 'verbose' takes true or false"),
        ("start_date", "yesterday", "Parameter 'start_date' takes a date (YYYY-MM-DD)"),
        ("start_date", "2026-02-30", "Parameter 'start_date' takes a date (YYYY-MM-DD)"),
        ("1x", "1", "Parameter name '1x' is not a Python identifier."),
    ],
)
def test_a_bad_parameter_is_refused_with_the_fix(typed: Path, name: str, value: str, says: str) -> None:
    with pytest.raises(SpecError) as refused:
        check_parameters(typed, {name: value})
    assert says in str(refused.value)


def test_a_step_parameter_the_notebook_never_defines_is_refused(
    project: Path, notebook: Callable[..., Path]
) -> None:
    nb = notebook(
        project / "steps.ipynb",
        "%load_ext etl_nb\n%etl connect lake data\n",
        "start = 1",
    )
    executed = nbformat.read(nb, as_version=4)
    executed.cells.append(nbformat.v4.new_code_cell("%%etl transform t\nSELECT {{ strat }} AS x"))
    nbformat.write(executed, nb)

    with pytest.raises(
        SpecError, match=r"Step 't' uses the parameter \{\{ strat \}\} .*Did you mean 'start'\?"
    ):
        check_parameters(nb, {})


def test_run_refuses_an_unknown_parameter_in_one_line_and_records_nothing(
    typed: Path, project: Path, etl_nb: Callable[..., Run]
) -> None:
    done = etl_nb("run", str(typed), "-p", "minyear", "2021", cwd=project)

    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "etl-nb: error: Unknown parameter 'minyear' for notebook 'typed.ipynb'. Did you mean 'min_year'? "
        "Its parameters cell defines: min_year, rate, verbose, start_date, label, anything."
    ]
    assert json.loads(etl_nb("runs", "--json", cwd=project).stdout) == []


def test_run_refuses_a_value_of_the_wrong_type_and_a_missing_notebook(
    typed: Path, project: Path, etl_nb: Callable[..., Run]
) -> None:
    wrong = etl_nb("run", str(typed), "-p", "verbose", "sometimes", cwd=project)
    missing = etl_nb("run", str(project / "nope.ipynb"), cwd=project)

    for done in (wrong, missing):
        assert done.returncode == 2
        assert len(done.stderr.strip().splitlines()) == 1
    assert "'sometimes' is not one" in wrong.stderr
    assert "does not exist" in missing.stderr
