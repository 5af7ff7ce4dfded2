"""The Dockerfile passes hadolint and builds the image the other files expect."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def hadolint(dockerfile: Path) -> list[dict[str, object]]:
    """hadolint's findings on ``dockerfile`` (every level, info included)."""
    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if binary is None:
        pytest.fail("hadolint is not installed: install the dev extra (pip install -e '.[dev]')")
    out = subprocess.run(
        [binary, "--format", "json", "--no-fail", str(dockerfile)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    findings: list[dict[str, object]] = json.loads(out.stdout or "[]")
    return findings


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = dockerfile.read_text().replace("\\\n", " ")
    pairs = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            word, _, rest = stripped.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def final_stage(dockerfile: Path) -> list[tuple[str, str]]:
    steps = instructions(dockerfile)
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_dockerfile_has_no_hadolint_finding(deploy_dir: Path) -> None:
    assert hadolint(deploy_dir / "Dockerfile") == []


def test_hadolint_catches_an_image_left_running_as_root(deploy_dir: Path, tmp_path: Path) -> None:
    # The linter really runs: the same file ending with `USER root` is refused.
    broken = tmp_path / "Dockerfile"
    broken.write_text((deploy_dir / "Dockerfile").read_text() + "\nUSER root\n")
    assert "DL3002" in {finding["code"] for finding in hadolint(broken)}


def test_image_runs_as_a_non_root_user(deploy_dir: Path) -> None:
    users = [args for word, args in final_stage(deploy_dir / "Dockerfile") if word == "USER"]
    assert users, "the final stage sets no USER"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_image_has_a_healthcheck_and_starts_jupyterlab(deploy_dir: Path) -> None:
    stage = dict(final_stage(deploy_dir / "Dockerfile"))
    assert stage["HEALTHCHECK"].split()[0].startswith("--")
    assert "CMD" in stage["HEALTHCHECK"]
    assert json.loads(stage["CMD"])[:2] == ["jupyter", "lab"]
    assert "8888" in stage["EXPOSE"]


def test_image_installs_etl_nb_with_jupyterlab(deploy_dir: Path) -> None:
    runs = " ".join(args for word, args in instructions(deploy_dir / "Dockerfile") if word == "RUN")
    assert '".[all]"' in runs
    assert "jupyterlab" in runs


def test_build_context_keeps_secrets_and_the_venv_out(deploy_dir: Path) -> None:
    # BuildKit reads <Dockerfile>.dockerignore: it starts by excluding everything.
    ignore = (deploy_dir / "Dockerfile.dockerignore").read_text().splitlines()
    assert "**" in ignore
    assert not any(line.startswith("!") and (".env" in line or ".venv" in line) for line in ignore)
