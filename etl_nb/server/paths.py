"""Paths the API accepts: only those inside the server's root folder."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from etl_nb.server.errors import ApiError


def inside_root(root: Path, path: str) -> Path:
    """``path`` (relative to ``root``, as the panel names notebooks) resolved, or a 403 if it leaves ``root``.

    Symbolic links are followed before the check, so a link pointing out of
    the root is refused like ``../`` is.
    """
    if not path or "\x00" in path:
        raise ApiError(400, "Give the notebook's path relative to the server's root, e.g. 'x/y.ipynb'.")
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise ApiError(403, f"'{path}' is outside the server's root folder; only notebooks under it can run.")
    return resolved


def relative_to_root(root: Path, path: str | Path | None) -> str | None:
    """``path`` as the panel names it (POSIX, relative to ``root``), or None when it is elsewhere."""
    if not path:
        return None
    resolved = Path(path).resolve()
    base = root.resolve()
    if not resolved.is_relative_to(base):
        return None
    return str(PurePosixPath(resolved.relative_to(base)))
