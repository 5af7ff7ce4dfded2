"""Trimming a step's SQL so the engine can nest it in a larger query."""

from __future__ import annotations

import pytest

from etl_nb.engine.sqltext import sql_body


@pytest.mark.parametrize(
    ("sql", "body"),
    [
        ("SELECT 1", "SELECT 1"),
        ("SELECT 1;", "SELECT 1"),
        ("SELECT 1 ; ;\n\n", "SELECT 1"),
        ("SELECT 1; -- done", "SELECT 1 -- done"),
        ("SELECT 1 /* a */;", "SELECT 1 /* a */"),
        ("SELECT 'é;' ;", "SELECT 'é;'"),  # the tokenizer counts bytes, not characters
        ("SELECT ';' AS semi -- ;", "SELECT ';' AS semi -- ;"),
        ("\n\nSELECT 1;", "\n\nSELECT 1"),  # leading lines stay: error line numbers match the cell
    ],
)
def test_sql_body_drops_trailing_semicolons_only(sql: str, body: str) -> None:
    assert sql_body(sql) == body
