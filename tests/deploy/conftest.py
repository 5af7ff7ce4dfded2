"""Fixtures for the deployment files: their folder and their parsed YAML.

No Docker engine or Kubernetes cluster runs here, so the files are checked
statically (see docs/deploy.md): hadolint on the Dockerfile, the bundled
Kubernetes schemas on the manifests, compose's own rules on the compose file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.fixture(scope="session")
def deploy_dir() -> Path:
    """The repository's ``deploy/`` folder."""
    return DEPLOY


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    """``deploy/compose.yaml`` as compose reads it (YAML anchors and merges applied)."""
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


@pytest.fixture(scope="session")
def manifests() -> list[dict[str, Any]]:
    """Every Kubernetes object in ``deploy/k8s/*.yaml`` except the kustomization."""
    objects: list[dict[str, Any]] = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                document["__file__"] = path.name
                objects.append(document)
    return objects
