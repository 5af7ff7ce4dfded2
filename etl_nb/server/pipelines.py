"""The pipelines in the server's root: every notebook with ``%etl`` cells, read without a kernel.

Notebooks are read through ``etl_nb.notebook.reader`` (the grammar the
kernel uses) and cached by modification time and size, so listing the
pipelines again only rereads the notebooks that changed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from etl_nb.errors import EtlError
from etl_nb.notebook.reader import NotebookPipeline, Problem, pipeline_name, read_notebook
from etl_nb.spec import CheckStep, ExtractStep, LoadStep, Step, TransformStep

# Folders no one keeps pipelines in: skipping them keeps a scan of a big root quick.
_SKIPPED_FOLDERS = {"node_modules", "__pycache__", "site-packages"}
_MARKER = b"%etl"


@dataclass(frozen=True)
class _Cached:
    mtime_ns: int
    size: int
    pipeline: dict[str, Any] | None


class PipelineIndex:
    """The pipelines under ``root``, rescanned on each call, reread only when a notebook changed."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._cache: dict[Path, _Cached] = {}
        self._lock = threading.Lock()

    def pipelines(self) -> list[dict[str, Any]]:
        """Each notebook with ``%etl`` cells as JSON: path, name, steps, edges, parameters, problems."""
        found: list[dict[str, Any]] = []
        seen: set[Path] = set()
        for path in self._notebooks():
            seen.add(path)
            entry = self._read(path)
            if entry is not None:
                found.append(entry)
        with self._lock:
            for gone in set(self._cache) - seen:
                del self._cache[gone]
        return sorted(found, key=lambda p: str(p["path"]))

    def _notebooks(self) -> Iterator[Path]:
        for folder, subfolders, files in os.walk(self.root):
            subfolders[:] = sorted(d for d in subfolders if not _skipped(d))
            for name in sorted(files):
                if name.endswith(".ipynb") and not name.startswith("."):
                    yield Path(folder) / name

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        with self._lock:
            cached = self._cache.get(path)
        if cached is not None and (cached.mtime_ns, cached.size) == (stat.st_mtime_ns, stat.st_size):
            return cached.pipeline
        entry = self._parse(path)
        with self._lock:
            self._cache[path] = _Cached(stat.st_mtime_ns, stat.st_size, entry)
        return entry

    def _parse(self, path: Path) -> dict[str, Any] | None:
        relative = str(PurePosixPath(path.relative_to(self.root)))
        try:
            if _MARKER not in path.read_bytes():
                return None  # most notebooks are not pipelines: no need to parse them
            notebook = read_notebook(path)
        except OSError:
            return None
        except EtlError as exc:
            return unreadable_json(relative, pipeline_name(path), exc.message)
        if not notebook.is_pipeline:
            return None
        return pipeline_json(relative, notebook)


def _skipped(folder: str) -> bool:
    return folder.startswith(".") or folder in _SKIPPED_FOLDERS


def pipeline_json(path: str, notebook: NotebookPipeline) -> dict[str, Any]:
    """One pipeline as the API answers it."""
    return {
        "path": path,
        "name": notebook.name,
        "steps": [step_json(node, step) for node, step in notebook.dag().nodes.items()],
        "edges": [list(edge) for edge in notebook.edges],
        "parameters": [
            _parameter_json(name, notebook.parameters.get(name, _NO_DEFAULT))
            for name in notebook.parameter_names
        ],
        "problems": [problem_json(p) for p in notebook.problems],
    }


def unreadable_json(path: str, name: str, message: str) -> dict[str, Any]:
    """A notebook the reader could not open, listed with the reason as its one problem."""
    return {
        "path": path,
        "name": name,
        "steps": [],
        "edges": [],
        "parameters": [],
        "problems": [{"cell": None, "message": message, "step": None}],
    }


def step_json(node: str, step: Step) -> dict[str, Any]:
    """A DAG node: its id (as runs record it), verb, and what the panel needs to label it."""
    data: dict[str, Any] = {"id": node, "verb": step.verb, "cell": _cell_number(step.cell)}
    if isinstance(step, ExtractStep):
        data.update(name=step.name, source=step.source)
    elif isinstance(step, TransformStep):
        data.update(name=step.name, python=step.python is not None)
    elif isinstance(step, CheckStep):
        data.update(step=step.step, warn=step.warn)
    elif isinstance(step, LoadStep):
        data.update(step=step.step, to=step.to, target=step.target, mode=step.mode)
    return data


def problem_json(problem: Problem) -> dict[str, Any]:
    """A problem with its cell number as people count cells (1 = the first cell)."""
    return {"cell": _cell_number(problem.cell), "message": problem.message, "step": problem.step}


_NO_DEFAULT = object()


def _parameter_json(name: str, default: Any) -> dict[str, Any]:
    if default is _NO_DEFAULT:
        return {"name": name, "default": None, "type": None}
    kind = {bool: "bool", int: "int", float: "float", str: "str", type(None): "null"}.get(type(default))
    return {"name": name, "default": default if kind else repr(default), "type": kind or "str"}


def _cell_number(index: int | None) -> int | None:
    return None if index is None else index + 1
