"""The project folder: where a pipeline's ``.etl_nb/`` (run store, executed notebooks, cache) lives.

``ETL_NB_HOME`` if set; else the nearest folder at or above the notebook's (or
script's) folder that has ``.etl_nb/``; else that folder itself. So a notebook,
its exported script and ``etl-nb`` run from anywhere record into one history.

This module imports nothing else from etl_nb, so every layer can ask it.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

HOME_ENV = "ETL_NB_HOME"
PROJECT_DIR = ".etl_nb"
STORE_URL_ENV = "ETL_NB_STORE_URL"


def project_home(start: str | os.PathLike[str] | None = None) -> Path:
    """The project folder of a notebook or script in folder ``start`` (default: the current one)."""
    given = os.environ.get(HOME_ENV)
    if given:
        return Path(given).expanduser().resolve()
    folder = Path(start if start is not None else Path.cwd()).expanduser().resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / PROJECT_DIR).is_dir():
            return candidate
    return folder


def default_store_url(start: str | os.PathLike[str] | None = None) -> str:
    """``ETL_NB_STORE_URL``, else a SQLite file in the project folder of ``start`` (``project_home``)."""
    url = os.environ.get(STORE_URL_ENV)
    if url:
        return url
    return f"sqlite:///{project_home(start) / PROJECT_DIR / 'etl_nb.db'}"


@functools.cache  # the parent and its command line do not change while this kernel lives
def papermill_notebook() -> Path | None:
    """The notebook a plain ``papermill IN OUT`` command runs, when this is its kernel.

    papermill tells its kernel nothing about the notebook (no environment
    variable, no path in the messages), but the kernel is a child of the
    ``papermill`` process, whose command line names it. Linux only (``/proc``);
    None anywhere else, or when the parent is not the papermill command.
    """
    parent = Path("/proc") / str(os.getppid())
    try:
        words = [w.decode(errors="replace") for w in (parent / "cmdline").read_bytes().split(b"\0") if w]
        cwd = Path(os.readlink(parent / "cwd"))
    except OSError:
        return None
    starts = [i for i, w in enumerate(words) if Path(w).name == "papermill"]
    if not starts:
        return None
    for word in words[starts[0] + 1 :]:
        if not word.startswith("-") and word.endswith(".ipynb"):
            return (cwd / word).resolve()  # the first notebook named is the input, the second the output
    return None


def pipeline_name(path: str | os.PathLike[str] | None) -> str:
    """A pipeline name from a notebook path: the file stem as an identifier (``notebook`` if none)."""
    if not path:
        return "notebook"
    stem = Path(path).stem if str(path).endswith(".ipynb") else Path(path).name
    name = re.sub(r"[^A-Za-z0-9_]+", "_", stem).strip("_") or "notebook"
    return f"_{name}" if name[0].isdigit() else name
