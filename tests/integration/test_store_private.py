"""The run store's files and folders are readable by their owner only (issue 10, item 10)."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from etl_nb import Pipeline
from etl_nb.store import RunStore, private_file, private_folder


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_store_folder_and_database_files_are_owner_only(tmp_path: Path, etl_home: Path) -> None:
    old = os.umask(0o022)  # a usual umask: files 0644, folders 0755 unless made private
    try:
        (tmp_path / "in.csv").write_text("id\n1\n")
        p = Pipeline("private", base_dir=tmp_path)
        p.connect("lake", ".")
        p.extract("rows", source="lake", path="in.csv")
        assert p.run().status == "success"
    finally:
        os.umask(old)
    folder = etl_home / ".etl_nb"
    assert _mode(folder) == 0o700
    files = sorted(folder.glob("etl_nb.db*"))
    assert files[0].name == "etl_nb.db"
    assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}


def test_an_older_store_without_the_process_columns_is_upgraded_on_open(tmp_path: Path) -> None:
    database = tmp_path / "old.db"
    with sqlite3.connect(database) as con:
        con.execute(
            "CREATE TABLE etl_runs (id VARCHAR(32) PRIMARY KEY, pipeline VARCHAR(255) NOT NULL, "
            "status VARCHAR(16) NOT NULL, params JSON NOT NULL, notebook TEXT, output_notebook TEXT, "
            "trigger VARCHAR(32) NOT NULL, started_at DATETIME NOT NULL, finished_at DATETIME, "
            "seconds FLOAT, rows INTEGER, error TEXT)"
        )
    store = RunStore(f"sqlite:///{database}")
    store.start_run("20261201T000000-00000000", "old", {})
    assert store.get_run("20261201T000000-00000000").status == "running"  # type: ignore[union-attr]


def test_private_helpers_make_owner_only_folders_and_files(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        run = private_folder(tmp_path / "runs" / "abc")
        notebook = private_file(run / "nb.ipynb")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "runs") == 0o700
    assert _mode(run) == 0o700
    assert _mode(notebook) == 0o600
