"""The built wheel runs on its own: installed into a fresh venv outside the checkout, it migrates
SQLite and PostgreSQL and serves, finding its migrations inside the package."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import WEBHOOK_TOKEN, free_port

pytestmark = pytest.mark.wheel
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin directory of a fresh venv with only the wheel (and its dependencies) installed."""
    base = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(base / "dist"), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (base / "dist").glob("cmdb_sync-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(base / "venv")], check=True)
    pip = [str(base / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    # as the container and the systemd example install it: the wheel, under the lock file's versions
    subprocess.run(
        [*pip, "-c", str(ROOT / "requirements.lock"), str(wheel)], check=True, capture_output=True, timeout=600
    )
    return base / "venv" / "bin"


def run(bin_dir: Path, cwd: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CMDB_SYNC_", "VIRTUAL_ENV", "PYTHONPATH"))}
    env["CMDB_SYNC_DATABASE_URL"] = url
    return subprocess.run(
        [str(bin_dir / "cmdb-sync"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_installed_wheel_migrates_the_database(installed, databases, tmp_path, backend) -> None:
    url = f"sqlite:///{tmp_path / 'wheel.db'}" if backend == "sqlite" else databases.fresh("postgresql")
    upgraded = run(installed, tmp_path, url, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    current = run(installed, tmp_path, url, "db", "current")
    assert "up to date" in current.stdout, current.stdout + current.stderr


def test_the_installed_wheel_serves(installed, tmp_path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMDB_SYNC_")}
    env.update(
        {"CMDB_SYNC_WEBHOOK_TOKENS": WEBHOOK_TOKEN, "CMDB_SYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'served.db'}"}
    )
    process = subprocess.Popen(
        [str(installed / "cmdb-sync"), "serve", "--port", str(port)], cwd=tmp_path, env=env, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            process.kill()
            raise AssertionError(process.stderr.read().decode() if process.stderr else "did not become ready")
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").json()["status"] == "ready"
    finally:
        process.terminate()
        process.wait(timeout=20)
