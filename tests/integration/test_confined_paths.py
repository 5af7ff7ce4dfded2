"""A files connection reads and writes only inside its folder (issue 10, item 2).

Every way out is refused with one line that names the connection's folder:
``..``, absolute paths, ``~``, globs that climb, and symlinks that lead out.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from etl_nb import Pipeline
from etl_nb.errors import SpecError


@pytest.fixture
def box(tmp_path: Path) -> Path:
    """``tmp/outer/box`` (the connection's folder) with a file in it, and a secret beside it."""
    folder = tmp_path / "outer" / "box"
    (folder / "sub").mkdir(parents=True)
    (folder / "in.csv").write_text("id\n1\n")
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "keys.csv").write_text("key\nhunter2\n")
    (tmp_path / "outer" / "beside.csv").write_text("id\n2\n")
    return folder


def _pipeline(folder: Path) -> Pipeline:
    p = Pipeline("confined", base_dir=folder.parent)
    p.connect("box", str(folder))
    return p


def _assert_refused(p: Pipeline, folder: Path, step: str) -> None:
    result = p.run()
    assert result.status == "failed"
    assert isinstance(result.exception, SpecError)
    message = result.error or ""
    assert "\n" not in message
    assert f"leads outside {folder}, the folder of connection 'box'" in message
    assert result.steps[step].status == "failed"


def _outside_files(tmp_path: Path, folder: Path) -> set[Path]:
    """Files outside ``folder``, but for the run store's (``etl_home``)."""
    return {
        p
        for p in tmp_path.rglob("*")
        if p.is_file() and folder not in p.parents and (tmp_path / "etl_home") not in p.parents
    }


@pytest.mark.parametrize("mode", ["replace", "append", "merge"])
@pytest.mark.parametrize(
    "path",
    ["../../x.parquet", "ABSOLUTE", "~/x.csv", "sub/../../../x.json", "../x.csv", "sub/../../x.ndjson"],
)
def test_a_load_outside_the_folder_is_refused_in_every_mode(
    box: Path, tmp_path: Path, path: str, mode: str
) -> None:
    path = str(tmp_path / "x.parquet") if path == "ABSOLUTE" else path
    before = _outside_files(tmp_path, box)
    p = _pipeline(box)
    p.extract("rows", source="box", path="in.csv")
    p.load("rows", to="box", path=path, mode=mode, key="id" if mode == "merge" else None)  # type: ignore[arg-type]
    _assert_refused(p, box, f"load:rows:box:{path}")
    assert _outside_files(tmp_path, box) == before
    assert not (Path.home() / "x.csv").exists() or path != "~/x.csv"


@pytest.mark.parametrize(
    "pattern",
    ["../../secret/*.csv", "/etc/passwd", "**/../../../secret/keys.csv", "../beside.csv", "~/.bashrc"],
)
def test_an_extract_outside_the_folder_is_refused(box: Path, pattern: str) -> None:
    p = _pipeline(box)
    p.extract("rows", source="box", path=pattern, format="csv")
    _assert_refused(p, box, "rows")


def test_an_extract_through_a_symlink_that_leaves_the_folder_is_refused(box: Path, tmp_path: Path) -> None:
    os.symlink(tmp_path / "secret", box / "link")
    os.symlink(tmp_path / "secret" / "keys.csv", box / "keys.csv")
    for pattern in ("link/*.csv", "keys.csv", "*.csv"):
        p = _pipeline(box)
        p.extract("rows", source="box", path=pattern)
        _assert_refused(p, box, "rows")


def test_a_load_through_a_symlink_that_leaves_the_folder_is_refused(box: Path, tmp_path: Path) -> None:
    os.symlink(tmp_path / "secret", box / "out")
    os.symlink(tmp_path / "secret" / "keys.csv", box / "keys.csv")
    for path in ("out/x.parquet", "keys.csv"):
        p = _pipeline(box)
        p.extract("rows", source="box", path="in.csv")
        p.load("rows", to="box", path=path, mode="replace")
        _assert_refused(p, box, f"load:rows:box:{path}")
    assert (tmp_path / "secret" / "keys.csv").read_text() == "key\nhunter2\n"
    assert sorted(os.listdir(tmp_path / "secret")) == ["keys.csv"]


def test_paths_that_stay_inside_the_folder_still_work(box: Path) -> None:
    os.symlink(box / "in.csv", box / "sub" / "alias.csv")  # a symlink within the folder is fine
    p = _pipeline(box)
    p.extract("rows", source="box", path="sub/../in.csv")
    p.extract("aliased", source="box", path="sub/*.csv")
    p.load("rows", to="box", path="sub/../out/rows.parquet", mode="replace")
    result = p.run()
    assert result.status == "success", result.error
    assert (box / "out" / "rows.parquet").is_file()
