"""The deployment files are checked as far as this machine can: no container engine runs here, so
the Dockerfile goes through hadolint and a check that everything it copies exists, the compose file
through the Compose specification's schema, and the systemd unit through ``systemd-analyze verify``."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_dockerfile_passes_hadolint() -> None:
    linted = run(str(BIN / "hadolint"), "Dockerfile")
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_dockerfile_copies_what_exists_and_builds_the_package_with_its_migrations() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = [
        source
        for line in dockerfile.splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for source in line.split()[1:-1]
    ]
    assert copied, "the Dockerfile copies nothing from the repository"
    missing = [source for source in copied if not (ROOT / source).exists()]
    assert not missing, f"the Dockerfile copies what the repository does not hold: {missing}"
    # what setuptools needs to build the wheel: the package and the migrations it ships
    assert {"pyproject.toml", "cmdb_sync", "migrations", "requirements.lock"} <= set(copied)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert not set(copied) & set(ignored)
    assert re.search(r"^USER \d+:\d+$", dockerfile, re.M), "the image must not run as root"
    assert "HEALTHCHECK" in dockerfile and "/readyz" in dockerfile


def test_the_compose_file_follows_the_compose_specification() -> None:
    checked = run(str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "compose.yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_compose_file_serves_the_image_of_this_repository_on_postgresql() -> None:
    import yaml

    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    service = compose["services"]["cmdb-sync"]
    assert service["build"] == "."
    assert service["environment"]["CMDB_SYNC_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "--migrate" in service["command"]
    assert service["depends_on"]["db"]["condition"] == "service_healthy"


def test_the_systemd_unit_verifies(tmp_path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: apt-get install systemd"
    unit = (ROOT / "deploy" / "cmdb-sync.service").read_text()
    assert "ExecStart=/opt/cmdb-sync/bin/cmdb-sync serve" in unit
    # verified with ExecStart pointing at this venv's command, as an install at /opt would have it
    local = tmp_path / "cmdb-sync.service"
    local.write_text(unit.replace("/opt/cmdb-sync/bin/cmdb-sync", str(BIN / "cmdb-sync")))
    verified = run(analyze, "verify", str(local), cwd=tmp_path)
    problems = [line for line in (verified.stdout + verified.stderr).splitlines() if "cmdb-sync.service" in line]
    assert verified.returncode == 0 and not problems, verified.stdout + verified.stderr


@pytest.mark.parametrize("name", ["LICENSE", "requirements.lock"])
def test_the_repository_holds(name: str) -> None:
    assert (ROOT / name).stat().st_size > 0
