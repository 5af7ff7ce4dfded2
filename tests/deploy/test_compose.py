"""deploy/compose.yaml holds what `docker compose config` would accept, with no secret in it.

No Docker engine runs here, so these tests apply compose's own rules to the
parsed file: known keys, an image or a build for every service, variable
interpolation (`${VAR}`, `${VAR:-default}`, `${VAR:?error}`), dependencies
that exist, wait on a healthcheck and form no cycle, and declared volumes and
secrets.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

TOP_LEVEL = {"version", "name", "services", "networks", "volumes", "secrets", "configs", "include"}
SERVICE_KEYS = {
    "build", "command", "configs", "container_name", "depends_on", "deploy", "entrypoint", "env_file",
    "environment", "expose", "healthcheck", "image", "labels", "logging", "networks", "ports", "profiles",
    "restart", "secrets", "stop_grace_period", "stop_signal", "user", "volumes", "working_dir",
}  # fmt: skip
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
SECRET_NAMES = re.compile(r"PASSWORD|TOKEN|SECRET", re.IGNORECASE)
URL_PASSWORD = re.compile(r"://[^/@:]+:(?P<password>[^@]+)@")
ETL_NB_SERVICES = {"lab", "scheduler", "worker-1", "worker-2"}


def strings(node: Any) -> Iterator[str]:
    """Every string value in a parsed YAML tree."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation of one value; raises KeyError for an unset ``${VAR:?...}``."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"] or ""
        value = env.get(name)
        if op in (":?", "?") and not value:
            raise KeyError(f"{name}: {arg}")
        if op in (":-", "-") and not value:
            return arg
        return value or ""

    return VARIABLE.sub(replace, text.replace("$$", "\0")).replace("\0", "$")


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def test_compose_uses_only_keys_compose_knows(compose: dict[str, Any]) -> None:
    assert {k for k in compose if not k.startswith("x-")} <= TOP_LEVEL
    for name, service in compose["services"].items():
        unknown = set(service) - SERVICE_KEYS
        assert not unknown, f"service {name}: unknown keys {unknown}"


def test_compose_runs_lab_scheduler_two_workers_redis_and_postgres(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == ETL_NB_SERVICES | {"redis", "postgres"}
    assert services["scheduler"]["command"] == ["etl-nb", "scheduler", "--backend", "celery"]
    for worker in ("worker-1", "worker-2"):
        command = services[worker]["command"]
        assert command[:3] == ["etl-nb", "worker", "--concurrency"]
        assert int(command[3]) >= 1
    assert services["lab"]["command"][:2] == ["jupyter", "lab"]


def test_every_service_has_an_image_or_a_build_that_exists(compose: dict[str, Any], deploy_dir: Path) -> None:
    for name, service in compose["services"].items():
        assert "image" in service or "build" in service, name
        if "build" in service:
            context = (deploy_dir / service["build"]["context"]).resolve()
            assert (context / service["build"]["dockerfile"]).is_file(), name


def test_etl_nb_services_share_the_store_on_postgres_and_the_broker_on_redis(
    compose: dict[str, Any],
) -> None:
    for name in ETL_NB_SERVICES:
        env = environment(compose["services"][name])
        assert env["ETL_NB_STORE_URL"].startswith("postgresql+psycopg://"), name
        assert "@postgres:5432/" in env["ETL_NB_STORE_URL"], name
        assert env["ETL_NB_BROKER_URL"].startswith("redis://redis:6379/"), name


def test_dependencies_exist_wait_for_healthchecks_and_form_no_cycle(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on a missing service {target}"
            assert rule["condition"] in CONDITIONS
            if rule["condition"] == "service_healthy":
                assert services[target]["healthcheck"]["test"], f"{target} has no healthcheck"
    for name in ETL_NB_SERVICES:
        assert {k: v["condition"] for k, v in services[name]["depends_on"].items()} == {
            "postgres": "service_healthy",
            "redis": "service_healthy",
        }

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"dependency cycle: {' -> '.join((*path, name))}"
        for target in services[name].get("depends_on", {}):
            visit(target, (*path, name))

    for name in services:
        visit(name, ())


def test_every_service_has_a_healthcheck_in_compose_form(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        test = service["healthcheck"]["test"]
        assert isinstance(test, str) or test[0] in {"CMD", "CMD-SHELL"}, name


def test_no_password_or_token_is_written_in_the_file(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in environment(service).items():
            if SECRET_NAMES.search(key) and not key.endswith("_FILE"):
                assert VARIABLE.fullmatch(value), f"{name}: {key} is a literal, not a ${{VAR}} reference"
            url = URL_PASSWORD.search(value)
            if url:
                assert VARIABLE.fullmatch(url["password"]), f"{name}: {key} has a literal password"
    assert "POSTGRES_PASSWORD" not in environment(compose["services"]["postgres"])


def test_compose_refuses_to_start_without_the_secret_variables(compose: dict[str, Any]) -> None:
    required = {
        m["name"] for text in strings(compose) for m in VARIABLE.finditer(text) if m["op"] in (":?", "?")
    }
    assert {"ETL_NB_PG_PASSWORD", "JUPYTER_TOKEN"} <= required
    with pytest.raises(KeyError, match="ETL_NB_PG_PASSWORD"):
        interpolate(environment(compose["services"]["scheduler"])["ETL_NB_STORE_URL"], {})


def test_every_value_resolves_once_the_variables_are_set(compose: dict[str, Any]) -> None:
    env = {"ETL_NB_PG_PASSWORD": "pw", "JUPYTER_TOKEN": "tok"}
    for text in strings(compose):
        assert "${" not in interpolate(text, env), text
    store = interpolate(environment(compose["services"]["worker-1"])["ETL_NB_STORE_URL"], env)
    assert store == "postgresql+psycopg://etl_nb:pw@postgres:5432/etl_nb"


def test_volumes_and_secrets_used_by_services_are_declared(compose: dict[str, Any]) -> None:
    volumes, secrets = set(compose.get("volumes", {})), compose.get("secrets", {})
    for name, service in compose["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in volumes, f"{name} mounts an undeclared volume {source}"
        for secret in service.get("secrets", []):
            assert secret in secrets, f"{name} uses an undeclared secret {secret}"
    for name, secret in secrets.items():
        assert secret.keys() & {"file", "environment", "external"}, name
    postgres = environment(compose["services"]["postgres"])
    assert postgres["POSTGRES_PASSWORD_FILE"] == "/run/secrets/pg_password"
