"""Fixtures for ``etl-nb export``: copies of the example notebooks, isolated Jupyter dirs.

Every run happens in its own copy of ``notebooks/`` so the source notebook,
the exported notebook and the exported script write their outputs to
different folders, which the tests then compare file by file.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

# The helpers live beside this file; pytest's import mode may not put this folder on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from exporttools import IGNORED, NOTEBOOKS


@pytest.fixture(autouse=True)
def jupyter_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernels started by papermill write nothing to the home folder."""
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        folder = tmp_path / ".jupyter" / name.lower()
        folder.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(name, str(folder))
    for name in ("ETL_NB_NOTEBOOK", "JPY_SESSION_NAME"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def copy_examples(tmp_path: Path) -> Callable[[str], Path]:
    """A fresh copy of ``notebooks/`` (notebooks and data) in ``tmp_path/NAME``."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(NOTEBOOKS, target, ignore=shutil.ignore_patterns(*IGNORED))
        return target

    return copy
