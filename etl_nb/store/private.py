"""Files and folders the store keeps are its owner's only: run records and executed notebooks hold data.

``private_folder`` creates a folder (and any missing parents) readable only
by its owner (0700); ``private_file`` makes a file 0600, creating it empty
if it does not exist. Neither changes the process umask, which belongs to
the application.
"""

from __future__ import annotations

import os
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def private_folder(path: Path) -> Path:
    """``path`` as a folder, each folder created here 0700 (existing ones are left as they are)."""
    missing: list[Path] = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=FOLDER_MODE)
        except FileExistsError:  # another process made it first
            continue
        os.chmod(folder, FOLDER_MODE)  # mkdir's mode is masked by the umask
    return path


def private_file(path: Path) -> Path:
    """``path`` as an owner-only file (0600), created empty if missing."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    os.chmod(path, FILE_MODE)
    return path
