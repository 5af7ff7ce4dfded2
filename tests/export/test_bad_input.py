"""``etl-nb export`` refuses bad input with one line naming the fix, exit code 2, and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from exporttools import etl_nb_command, write_notebook

from etl_nb.cli import main

GOOD = [
    "%load_ext etl_nb",
    "%etl connect lake data",
    "%%etl extract orders --from lake\npath: orders.csv",
]


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_a_broken_cell_is_refused_with_its_number_and_nothing_is_written(tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path / "broken.ipynb", [*GOOD, "%%etl extrac totals\nSELECT 1"])
    before = _files(tmp_path)

    done = etl_nb_command("export", str(notebook), "--to", "py", cwd=tmp_path)

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("etl-nb: error: Cannot export: cell 4: Unknown verb 'extrac'.")
    assert "Did you mean 'extract'?" in done.stderr
    assert "Traceback" not in done.stderr
    assert _files(tmp_path) == before


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        (
            [*GOOD, "%%etl check orders\n- not_null: [id"],
            "cell 4: The body of check 'orders' is not valid YAML",
        ),
        (
            [*GOOD, "%%etl transform totals\nSELECT count(*) FROM ordrs"],
            "cell 4: Step 'totals' reads table 'ordrs' but no step or connection makes it. "
            "Did you mean 'orders'?",
        ),
        (
            [*GOOD, "%etl load orders --to nowhere --path x.csv"],
            "cell 4: Step 'orders' loads to connection 'nowhere', which is not declared.",
        ),
        ([*GOOD, "%etl load orders --to lake --path x.csv --mode {mode}"], "cell 4: Unknown --mode '{mode}'"),
        (["%etl connect lake data", "x = 1\n%etl frobnicate"], "cell 2: Unknown verb 'frobnicate'"),
    ],
)
def test_a_pipeline_that_cannot_build_is_refused_naming_the_cell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cells: list[str], message: str
) -> None:
    notebook = write_notebook(tmp_path / "bad.ipynb", cells)
    before = _files(tmp_path)

    code = main(["export", str(notebook), "--to", "ipynb"])

    error = capsys.readouterr().err
    assert code == 2
    assert message in error, error
    assert error.endswith("Nothing was written.\n")
    assert error.count("\n") == 1
    assert _files(tmp_path) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["export", "nowhere.ipynb", "--to", "py"],
            "Notebook 'nowhere.ipynb' does not exist. Check the path.",
        ),
        (["export", "{nb}", "--to", "pdf"], "argument --to: invalid choice: 'pdf'"),
        (["export", "{nb}", "--to", "py", "-o", "{dir}"], "is a folder; give a file name, e.g. -o"),
        (["export", "{nb}", "--to", "ipynb", "-o", "{nb}"], "is the notebook itself; give another file name"),
        (["export", "{nb}", "--to", "py", "-o", "out.ipynb"], "does not end in .py but --to is py"),
        (["export", "{nb}", "--to", "py", "-o", "missing/out.py"], "Folder 'missing' does not exist"),
        (["export", "{text}", "--to", "py"], "Cannot read notebook"),
        (["export", "{dir}", "--to", "py"], "is a folder; give the notebook file"),
    ],
)
def test_bad_arguments_get_one_line_with_the_fix(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    notebook = write_notebook(tmp_path / "good.ipynb", GOOD)
    (tmp_path / "folder").mkdir()
    (tmp_path / "notes.ipynb").write_text("not json")
    names = {"{nb}": str(notebook), "{dir}": "folder", "{text}": "notes.ipynb"}
    before = _files(tmp_path)

    try:
        code = main([names.get(a, a) for a in args])
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)

    error = capsys.readouterr().err
    assert code == 2
    assert message in error, error
    assert error.count("\n") == 1, error
    assert _files(tmp_path) == before


def test_export_writes_beside_the_notebook_and_says_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    notebook = write_notebook(tmp_path / "good.ipynb", GOOD)

    assert main(["export", str(notebook), "--to", "py"]) == 0
    assert main(["export", str(notebook), "--to", "ipynb"]) == 0
    assert main(["export", str(notebook), "--to", "py", "-o", "again.py"]) == 0

    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"wrote {tmp_path / 'good.py'}",
        f"wrote {tmp_path / 'good_plain.ipynb'}",
        "wrote again.py",
    ]
    assert (tmp_path / "again.py").read_text() == (tmp_path / "good.py").read_text()
    assert not list(tmp_path.glob(".*.tmp"))


def test_export_without_to_writes_a_plain_notebook_as_the_magic_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    notebook = write_notebook(tmp_path / "good.ipynb", GOOD)

    assert main(["export", str(notebook)]) == 0
    assert capsys.readouterr().out == f"wrote {tmp_path / 'good_plain.ipynb'}\n"
    assert main(["export", str(notebook), "-o", "script.py"]) == 0
    assert (tmp_path / "script.py").read_text().startswith('"""The good pipeline')
    assert not (tmp_path / "good.py").exists()
