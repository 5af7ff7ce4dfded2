"""Input that would exhaust memory or truncate a query is refused with one line (issue 10, item 6)."""

from __future__ import annotations

import pytest

from etl_nb import Pipeline
from etl_nb._yaml import MAX_YAML_BODY_BYTES, MAX_YAML_NODES
from etl_nb.errors import SpecError
from etl_nb.spec import parse_cell

# 9 levels of 9 aliases: under 700 bytes that stand for 9**9 (387 million) strings.
ALIAS_BOMB = "path: x.csv\noptions:\n  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"  {name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
)


def _one_line(error: SpecError) -> str:
    assert "\n" not in error.message
    return error.message


def test_an_alias_bomb_in_a_yaml_body_is_refused() -> None:
    assert len(ALIAS_BOMB.encode()) < 700
    for line, body in [
        ("extract x --from lake", ALIAS_BOMB),
        ("connect api https://api.example.com", ALIAS_BOMB.replace("path: x.csv\noptions:", "headers:")),
    ]:
        with pytest.raises(SpecError) as info:
            parse_cell(line, body)
        assert f"expand to more than {MAX_YAML_NODES:,} values" in _one_line(info.value)


def test_the_alias_bomb_in_an_extract_body_names_the_limit() -> None:
    with pytest.raises(SpecError) as info:
        parse_cell("extract x --from lake", ALIAS_BOMB)
    assert _one_line(info.value).startswith("The body of extract 'x' cannot be read as YAML: its aliases")


def test_a_self_referencing_alias_is_refused() -> None:
    with pytest.raises(SpecError) as info:
        parse_cell("extract x --from lake", "path: x.csv\noptions: {a: &a [1, *a]}")
    assert "refers to a value that contains it" in _one_line(info.value)


def test_ordinary_aliases_still_work() -> None:
    step = parse_cell("extract x --from lake", "path: x.csv\noptions: {nullstr: &n [NA, '-'], other: *n}")
    assert step.options == {"nullstr": ["NA", "-"], "other": ["NA", "-"]}  # type: ignore[union-attr]


def test_a_yaml_body_over_the_size_limit_is_refused() -> None:
    body = "path: x.csv\noptions:\n  nullstr: [" + ", ".join(["NA"] * (MAX_YAML_BODY_BYTES // 4)) + "]\n"
    with pytest.raises(SpecError) as info:
        parse_cell("extract x --from lake", body)
    assert "larger than 1 MB" in _one_line(info.value)


@pytest.mark.parametrize(
    ("line", "body"),
    [
        ("extract x --from db", "SELECT * FROM t\x00 WHERE id = 1"),
        ("transform x", "SELECT * FROM t\x00 WHERE id = 1"),
        ("check x", "- expression: id = 1\x00 OR true"),
        ("load x --to lake --path 'x\x00.csv'", None),
        ("load x --to db --table 't\x00'", None),
        ("connect db 'postgresql://h/db\x00'", None),
        ("connect lake './data\x00/x'", None),
        ("extract x --from lake", "path: 'x\x00.csv'"),
        ("extract x --from api", "path: /rows\nparams: {q: 'a\x00b'}"),
    ],
)
def test_a_nul_byte_in_sql_a_url_or_a_path_is_refused(line: str, body: str | None) -> None:
    with pytest.raises(SpecError) as info:
        parse_cell(line, body)
    assert "contains a NUL byte (\\x00)" in _one_line(info.value)


def test_a_nul_byte_through_the_python_api_is_refused() -> None:
    p = Pipeline("nul")
    for declare in (
        lambda: p.connect("db", "sqlite:///x.db\x00"),
        lambda: p.extract("x", "db", "SELECT 1\x00; DROP TABLE t"),
        lambda: p.transform("y", "SELECT 1\x00"),
        lambda: p.load("x", to="db", table="t\x00"),
    ):
        with pytest.raises(SpecError) as info:
            declare()
        assert "NUL byte" in _one_line(info.value)
