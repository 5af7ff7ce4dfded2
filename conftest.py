"""Keeps every test run's run store out of the project folder.

Example notebooks run under nbval start their kernel with this process's
environment, so the store location is set before anything is collected.
"""

from __future__ import annotations

import os
import tempfile

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if "ETL_NB_HOME" not in os.environ and "ETL_NB_STORE_URL" not in os.environ:
        os.environ["ETL_NB_HOME"] = tempfile.mkdtemp(prefix="etl_nb_tests_")


# Needs a PostgreSQL database of its own: tests/examples runs it under papermill.
collect_ignore = ["notebooks/api_to_postgres.ipynb"]
