"""``EtlNbApp``: the server extension, its moving parts as traitlets.

Configure it like any Jupyter app, e.g. in ``jupyter_server_config.py``::

    c.EtlNbApp.store_url = "postgresql://etl@db/etl_nb"
    c.EtlNbApp.home = "/srv/project"
"""

from __future__ import annotations

import os
from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
from traitlets import Enum, Unicode, default

from etl_nb.server.handlers import routes
from etl_nb.server.service import PanelService


class EtlNbApp(ExtensionApp):
    """The REST API the "ETL pipelines" panel talks to (``/etl-nb/api/``)."""

    name = "etl_nb"
    load_other_extensions = True

    home = Unicode(
        config=True,
        help="The project folder: its .etl_nb/ keeps the run store and executed notebooks. "
        "Default: ETL_NB_HOME, else the server's root folder.",
    )
    store_url = Unicode(
        config=True,
        help="The run store's SQLAlchemy URL. Default: ETL_NB_STORE_URL, else SQLite in HOME/.etl_nb/.",
    )
    backend = Enum(
        ["local", "celery"],
        default_value="local",
        config=True,
        help="Where runs started from the panel execute: 'local' (a process on this machine) or "
        "'celery' (a worker, through ETL_NB_BROKER_URL), as `etl-nb run --backend`.",
    )

    @default("home")
    def _default_home(self) -> str:
        return os.environ.get("ETL_NB_HOME") or self._root()

    @default("store_url")
    def _default_store_url(self) -> str:
        home = Path(self.home).resolve()
        return os.environ.get("ETL_NB_STORE_URL") or f"sqlite:///{home / '.etl_nb' / 'etl_nb.db'}"

    def _root(self) -> str:
        return str(self.serverapp.root_dir) if self.serverapp is not None else os.getcwd()

    def initialize_settings(self) -> None:
        """Build the service the handlers share, and point this process's runs at the project.

        ``ETL_NB_HOME`` and ``ETL_NB_STORE_URL`` are set in the server's
        environment: runs the panel starts, and kernels JupyterLab starts,
        then record into the same store the panel reads.
        """
        home = Path(self.home).resolve()
        os.environ["ETL_NB_HOME"] = str(home)
        os.environ["ETL_NB_STORE_URL"] = self.store_url
        self.service = PanelService(Path(self._root()), home, self.store_url, self.backend)
        self.log.info("etl_nb: pipelines under %s, runs recorded in %s", self._root(), home / ".etl_nb")

    def initialize_handlers(self) -> None:
        """Register the API's routes."""
        self.handlers.extend(routes(self.service))
