"""The one check that keeps a files connection inside its folder, for every read and write.

A load's ``--path`` and an extract's ``path:`` glob are relative to the
connection's folder and must stay in it: an absolute path, ``~``, a ``..``
that climbs out, or a symlink that leads out is refused with one line naming
the folder. (SQL that calls ``read_csv()`` itself and ``--python`` steps are
the user's own code and run with the user's rights: see docs/security.md.)
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from etl_nb.errors import SpecError


def confined(folder: Path, path: str, *, connection: str, step: str, what: str) -> Path:
    """``folder / path``, refused unless it is inside ``folder`` (already resolved), symlinks followed.

    ``what`` opens the message (``Load 'orders'``) and ``step`` is the step id
    the error belongs to. ``path`` may be a glob; its wildcards are checked as
    if they were names, so check each file it matches too.
    """
    if not _relative(path) or not _inside(Path(os.path.normpath(folder / path)), folder):
        raise _outside(path, folder, connection, step, what)
    candidate = folder / path
    try:
        real = candidate.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        raise _outside(path, folder, connection, step, what) from None
    if not _inside(real, folder):
        raise _outside(path, folder, connection, step, what)
    return candidate


def _relative(path: str) -> bool:
    if not path or "\x00" in path or path.startswith("~"):
        return False
    return not (PurePosixPath(path).is_absolute() or PureWindowsPath(path).is_absolute() or Path(path).anchor)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def _outside(path: str, folder: Path, connection: str, step: str, what: str) -> SpecError:
    return SpecError(
        f"{what}: the path {path!r} leads outside {folder}, the folder of connection "
        f"'{connection}'. Use a path inside that folder, relative to it (or connect another folder).",
        step=step,
    )
