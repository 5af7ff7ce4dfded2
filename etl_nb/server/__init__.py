"""The jupyter_server extension behind JupyterLab's "ETL pipelines" panel.

An ``ExtensionApp`` (``EtlNbApp``) serving an authenticated REST API under
``/etl-nb/api/`` (DESIGN.md section 6). It is enabled on ``pip install``
through ``jupyter-config/server-config/etl_nb.json``.
"""

from __future__ import annotations

from typing import Any

from etl_nb.server.app import EtlNbApp

__all__ = ["EtlNbApp"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Where jupyter_server finds the extension (``jpserver_extensions: {"etl_nb.server": true}``)."""
    return [{"module": "etl_nb.server", "app": EtlNbApp}]
