"""The project folder: ETL_NB_HOME, else the nearest folder with .etl_nb/ at or above, else the folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from etl_nb.project import project_home
from etl_nb.store import default_store_url


@pytest.fixture
def no_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ETL_NB_HOME", raising=False)
    monkeypatch.delenv("ETL_NB_STORE_URL", raising=False)


@pytest.mark.usefixtures("no_home")
def test_the_nearest_folder_with_etl_nb_at_or_above_is_the_project(tmp_path: Path) -> None:
    (tmp_path / "proj" / ".etl_nb").mkdir(parents=True)
    deep = tmp_path / "proj" / "pipelines" / "daily"
    deep.mkdir(parents=True)
    assert project_home(deep) == tmp_path / "proj"
    assert project_home(tmp_path / "proj") == tmp_path / "proj"
    assert default_store_url(deep) == f"sqlite:///{tmp_path / 'proj' / '.etl_nb' / 'etl_nb.db'}"


@pytest.mark.usefixtures("no_home")
def test_without_etl_nb_above_the_folder_itself_is_the_project(tmp_path: Path) -> None:
    (tmp_path / "nb").mkdir()
    # A machine may have a stray .etl_nb/ above the test's folder (/tmp/.etl_nb, say).
    stray = next((p for p in tmp_path.parents if (p / ".etl_nb").is_dir()), None)
    assert project_home(tmp_path / "nb") == (stray or tmp_path / "nb")


def test_etl_nb_home_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "proj" / ".etl_nb").mkdir(parents=True)
    monkeypatch.setenv("ETL_NB_HOME", str(tmp_path / "elsewhere"))
    assert project_home(tmp_path / "proj") == tmp_path / "elsewhere"
