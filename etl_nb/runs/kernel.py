"""A recorded run's kernel: its environment, its manager, and starting it early.

``etl-nb run`` starts the kernel first (``EarlyKernel.start``), then checks
the parameters and records the run while the kernel process starts beside
it; papermill then runs the notebook in that kernel (``execute_notebook``
takes it) instead of starting one and waiting for it. The kernel is given
what papermill would give it: the same kernelspec, folder, environment and
``--HistoryManager.hist_file=:memory:``. When anything differs (the run
ended up with another id, the notebook names another kernel) or the start
failed, the early kernel is shut down and papermill starts its own, so the
result is the run papermill makes.

This module imports no SQLAlchemy, reader or papermill (jupyter_client
only when a kernel starts), so the CLI reaches it before any of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from etl_nb.project import HOME_ENV, STORE_URL_ENV, project_home
from etl_nb.runs.runtime import kernel_runtime_folder
from etl_nb.store.recorder import RUN_ID_ENV, new_run_id

NOTEBOOK_ENV = "ETL_NB_NOTEBOOK"  # the magics name their pipeline after it
# What nbclient adds to an IPython kernel's command line (NotebookClient.ipython_hist_file).
HISTORY_ARGS = ["--HistoryManager.hist_file=:memory:"]
EXIT_POLL_SECONDS = 0.01  # how often a stopping kernel is checked for having exited (jupyter_client: 0.1)


def kernel_environment(run_id: str, store_url: str, notebook: Path) -> dict[str, str]:
    """What the kernel's environment adds to ours: the run to record into, the store, our Python first."""
    return {
        RUN_ID_ENV: run_id,
        NOTEBOOK_ENV: str(notebook),
        STORE_URL_ENV: store_url,
        HOME_ENV: str(project_home()),
        # The stock "python3" kernelspec starts `python` from PATH: make it ours.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }


def ipc_kernel_manager(runtime: Path) -> type:
    """A kernel manager on local sockets: no TCP port, and no plain-text warning on every run.

    Its connection file and sockets live in ``runtime``, the run's own folder,
    so kernels started side by side in one notebook folder never collide. It
    keeps the clients made for it, so that whoever started the kernel can
    close them (papermill does not close a client of a kernel it did not start).
    """
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class IpcKernelManager(AsyncKernelManager):
        clients: list[Any]

        @default("transport")
        def _default_transport(self) -> str:
            return "ipc"

        @default("connection_file")
        def _default_connection_file(self) -> str:
            return str(runtime / "kernel.json")

        @default("ip")
        def _default_ip(self) -> str:
            return str(runtime / "kernel-ipc")

        def client(self, **kwargs: Any) -> Any:
            made = super().client(**kwargs)
            self.__dict__.setdefault("clients", []).append(made)
            return made

    return IpcKernelManager


def find_notebook(notebook: Path | str) -> Path | None:
    """``notebook`` as an absolute path (relative: from the current folder, then the project's), or None."""
    path = Path(notebook).expanduser()
    for candidate in [path] if path.is_absolute() else [Path.cwd() / path, project_home() / path]:
        if candidate.is_file():
            return candidate.resolve()
    return None


def notebook_kernel_name(notebook: Path) -> str | None:
    """The kernelspec a notebook names (``metadata.kernelspec.name``), as papermill picks it; None if none."""
    try:
        with notebook.open(encoding="utf-8") as file:
            name = json.load(file)["metadata"]["kernelspec"]["name"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return name if isinstance(name, str) and name else None


class EarlyKernel:
    """A kernel started for one run before the run is checked and recorded."""

    def __init__(
        self, manager: Any, kernel_name: str, cwd: Path, env: Mapping[str, str], runtime: Any
    ) -> None:
        self.manager, self.kernel_name, self.cwd, self.env = manager, kernel_name, cwd, dict(env)
        self._runtime = runtime  # the runtime folder's context manager: left when the kernel stops
        self.stopped = False
        self._asked = False  # to exit (ask_to_stop)

    @property
    def run_id(self) -> str:
        """The run this kernel records into."""
        return self.env[RUN_ID_ENV]

    @classmethod
    def start(cls, notebook: Path, store_url: str) -> EarlyKernel | None:
        """Launch the kernel of a new run of ``notebook``; None when it cannot start here (papermill will).

        The run id is chosen now (``new_run_id``): the kernel's environment names it.
        """
        name = notebook_kernel_name(notebook)
        if name is None:
            return None
        env = kernel_environment(new_run_id(), store_url, notebook)
        runtime = kernel_runtime_folder()
        folder = runtime.__enter__()
        try:
            from jupyter_core.utils import run_sync

            manager = ipc_kernel_manager(folder)(kernel_name=name)
            run_sync(manager.start_kernel)(
                extra_arguments=list(HISTORY_ARGS), cwd=str(notebook.parent), env={**os.environ, **env}
            )
        except Exception:  # no such kernelspec, ...: papermill starts it and reports the error
            runtime.__exit__(None, None, None)
            return None
        return cls(manager, name, notebook.parent, env, runtime)

    def fits(self, kernel_name: str | None, cwd: Path, env: Mapping[str, str]) -> bool:
        """Whether this is the kernel papermill would start for the run (same spec, folder, environment)."""
        return (kernel_name, cwd, dict(env)) == (self.kernel_name, self.cwd, self.env)

    def ask_to_stop(self) -> None:
        """The notebook ran: ask the kernel to exit (as papermill does), without waiting for it.

        It exits while the run is recorded and shown; ``close`` then waits for it.
        """
        from jupyter_core.utils import run_sync

        if self._asked or self.stopped:
            return
        self._asked = True
        with contextlib.suppress(RuntimeError):  # "No kernel is running!": it died already
            if run_sync(self.manager.is_alive)():
                run_sync(self.manager.interrupt_kernel)()
                run_sync(self.manager.request_shutdown)()

    def close(self) -> None:
        """Wait for a kernel asked to stop to exit, else kill it (it never ran the notebook); then clean up.

        As ``shutdown_kernel`` does: SIGTERM, then SIGKILL, when it takes longer than
        ``shutdown_wait_time``; it is looked at every 10 ms instead of 100 ms. Nothing once closed.
        """
        from jupyter_core.utils import run_sync

        if self.stopped:
            return
        self.stopped = True
        manager = self.manager
        try:
            with contextlib.suppress(RuntimeError):
                if not self._asked:  # the parameters were refused, say: nothing to wait for
                    run_sync(manager.shutdown_kernel)(now=True)
                elif run_sync(manager.is_alive)():
                    run_sync(manager.finish_shutdown)(pollinterval=EXIT_POLL_SECONDS)
        finally:
            with contextlib.suppress(Exception):
                run_sync(manager.cleanup_resources)()
            for made in manager.__dict__.get("clients", []):
                with contextlib.suppress(Exception):
                    made.stop_channels()
            self._runtime.__exit__(None, None, None)
