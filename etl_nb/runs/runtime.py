"""A private runtime folder for each run's kernel: its connection file and IPC sockets.

jupyter_client names IPC sockets ``kernel-ipc-N`` in the current folder and
picks N by looking for free names, so two kernels started at once in one
folder collide (``Invalid message``, ``Kernel didn't respond``). Each run gets
its own short folder under the system's temporary folder instead (a Unix
socket path must stay under about 100 bytes, so not the project folder),
removed when the run ends. A run killed before it could clean up leaves its
folder behind; the next run sweeps folders whose process is gone.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

_PREFIX = "etl-nb-kernel-"
_OWNED = re.compile(rf"^{_PREFIX}(?P<pid>\d+)-")


@contextlib.contextmanager
def kernel_runtime_folder() -> Iterator[Path]:
    """A fresh folder (mode 0700) for one kernel, removed afterwards."""
    sweep_stale_runtime_folders()
    folder = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def sweep_stale_runtime_folders(parent: Path | None = None) -> list[Path]:
    """Remove the runtime folders of runs whose process no longer exists; returns them."""
    parent = parent or Path(tempfile.gettempdir())
    removed: list[Path] = []
    with contextlib.suppress(OSError):
        for entry in parent.iterdir():
            match = _OWNED.match(entry.name)
            if match and entry.is_dir() and not _alive(int(match["pid"])):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to sweep
        return True
    return True
