"""The Kubernetes manifests validate against the API schemas and deploy what DESIGN.md names."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

SECRET_NAMES = re.compile(r"PASSWORD|TOKEN|SECRET|STORE_URL|ALERT", re.IGNORECASE)


def validate(document: dict[str, Any]) -> None:
    """Raise ``kubernetes_validate.ValidationError`` unless the object fits the schema (strict)."""
    clean = {key: value for key, value in document.items() if key != "__file__"}
    kubernetes_validate.validate(clean, kubernetes_validate.latest_version(), strict=True)


def deployments(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == "Deployment"}


def containers(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for d in deployments(manifests).values() for c in d["spec"]["template"]["spec"]["containers"]]


def test_every_manifest_validates_strictly_against_the_kubernetes_schema(
    manifests: list[dict[str, Any]],
) -> None:
    assert manifests
    for document in manifests:
        validate(document)


def test_the_validator_refuses_a_misspelt_field(manifests: list[dict[str, Any]]) -> None:
    # The schemas really apply: an unknown field in a container is an error.
    broken = copy.deepcopy(deployments(manifests)["etl-nb-worker"])
    broken["spec"]["template"]["spec"]["containers"][0]["comand"] = ["etl-nb", "worker"]
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)


def test_deployments_run_the_commands_of_the_design(manifests: list[dict[str, Any]]) -> None:
    commands = {
        name: d["spec"]["template"]["spec"]["containers"][0]["command"]
        for name, d in deployments(manifests).items()
    }
    assert commands["etl-nb-scheduler"] == ["etl-nb", "scheduler", "--backend", "celery"]
    worker = commands["etl-nb-worker"]
    assert worker[:3] == ["etl-nb", "worker", "--concurrency"]
    assert int(worker[3]) >= 1
    assert commands["etl-nb-lab"][:2] == ["jupyter", "lab"]


def test_the_lab_service_reaches_the_lab_pods(manifests: list[dict[str, Any]]) -> None:
    service = next(m for m in manifests if m["kind"] == "Service")
    lab = deployments(manifests)["etl-nb-lab"]["spec"]["template"]
    assert service["spec"]["selector"].items() <= lab["metadata"]["labels"].items()
    port_names = {p["name"] for p in lab["spec"]["containers"][0]["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names


def test_every_container_has_requests_limits_and_probes(manifests: list[dict[str, Any]]) -> None:
    for container in containers(manifests):
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys(), container["name"]
        assert {"cpu", "memory"} <= container["resources"]["limits"].keys(), container["name"]
        assert "readinessProbe" in container, container["name"]
        assert "livenessProbe" in container, container["name"]


def test_pods_run_as_the_images_non_root_user(manifests: list[dict[str, Any]]) -> None:
    for deployment in deployments(manifests).values():
        pod = deployment["spec"]["template"]["spec"]["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert pod["runAsUser"] == 10001


def test_secrets_come_by_reference_never_as_literal_values(manifests: list[dict[str, Any]]) -> None:
    assert not [m for m in manifests if m["kind"] == "Secret"], "a Secret object would hold literal values"
    for container in containers(manifests):
        env = {e["name"]: e for e in container.get("env", [])}
        assert "secretKeyRef" in env["ETL_NB_STORE_URL"]["valueFrom"]
        for name, entry in env.items():
            if SECRET_NAMES.search(name):
                assert "value" not in entry, f"{container['name']}: {name} is written in the manifest"
    config = next(m for m in manifests if m["kind"] == "ConfigMap")
    assert not [key for key in config["data"] if SECRET_NAMES.search(key)]
    # The broker URL may sit in the ConfigMap only without a password in it.
    assert "@" not in config["data"]["ETL_NB_BROKER_URL"]
    assert config["data"]["ETL_NB_BROKER_URL"].startswith("redis://")


def test_every_workload_shares_the_config_and_the_project_volume(manifests: list[dict[str, Any]]) -> None:
    claims = {m["metadata"]["name"] for m in manifests if m["kind"] == "PersistentVolumeClaim"}
    for deployment in deployments(manifests).values():
        pod = deployment["spec"]["template"]["spec"]
        assert {"configMapRef": {"name": "etl-nb-config"}} in pod["containers"][0]["envFrom"]
        assert {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]} <= claims


def test_kustomization_lists_every_manifest(deploy_dir: Path) -> None:
    listed = yaml.safe_load((deploy_dir / "k8s" / "kustomization.yaml").read_text())["resources"]
    files = {p.name for p in (deploy_dir / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(listed) == files
