"""A real `cmdb-sync serve` with the seed's deliveries and a few more, and Debian's chromium driven
by Playwright (nothing is downloaded: `.ci/run` installs chromium with apt)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, WEBHOOK_TOKEN, free_port, wait_ready

CHROMIUM = os.environ.get("CMDB_SYNC_TEST_CHROMIUM", "/usr/bin/chromium")
READER, ADMIN = "reader-token", "admin-token"
BIN = Path(sys.executable).parent
ORG = "60d54f3daccf2bbd6659f3ad"


def extra_deliveries() -> list[dict]:
    """What the seed lacks for the browser's questions: labelled envs, a successful deployment
    with an image, a variable group with a secret, and enough apps for a second page."""
    deliveries = []

    def add(kind: str, action: str, body: dict, app: str = "myapp-demo") -> None:
        headers = {"X-AppStack-Event": kind, "X-AppStack-Action": action, "X-AppStack-App": app}
        deliveries.append(
            {"headers": headers, "body": {"user": {"id": "u-1"}, "orgId": ORG, "objectKind": kind, **body}}
        )

    for name, labels in (
        ("prod", {"envType": "production", "region": "cn-shanghai"}),
        ("prod-bj", {"envType": "production", "region": "cn-beijing"}),
    ):
        add(
            "Env",
            "Create",
            {
                "id": f"ui-env-{name}",
                "time": 1734310800000,
                "objectAttributes": {
                    "name": name,
                    "appName": "myapp-demo",
                    "resourcePoolName": "default",
                    "labelList": [{"namespace": "default", "name": k, "value": v} for k, v in labels.items()],
                },
            },
        )
    task = {
        "sn": "t1",
        "name": "backend",
        "state": "SUCCESS",
        "locator": "backend/default/apps/v1/Deployment",
        "contextContent": json.dumps({"artifacts": {"image.backend": "registry.example.com/demo/backend:2024-12-16"}}),
    }
    job = {
        "sn": "j1",
        "envName": "prod",
        "state": "SUCCESS",
        "startedAt": 1734314400000,
        "endedAt": 1734314700000,
        "stages": [{"sn": "s1", "name": "顺序1", "state": "SUCCESS", "tasks": [task]}],
    }
    add(
        "ChangeOrder",
        "StatusUpdate",
        {
            "id": "ui-deploy",
            "time": 1734314700000,
            "objectAttributes": {
                "sn": "ui-co-1",
                "name": "deploy prod",
                "appName": "myapp-demo",
                "version": "20241216-1",
                "state": "SUCCESS",
                "startedAt": 1734314400000,
                "jobs": [job],
            },
        },
    )
    add(
        "VariableGroup",
        "Create",
        {
            "id": "ui-vars",
            "time": 1734312600000,
            "objectAttributes": {"name": "prod-vars", "vars": [{"key": "DB_PASSWORD", "value": "s3cret-value"}]},
        },
    )
    for n in range(105):
        app = f"app-{n:03d}"
        add(
            "App",
            "Create",
            {"id": f"ui-app-{n}", "time": 1734300000000 + n, "objectAttributes": {"name": app, "type": "APP"}},
            app=app,
        )
    return deliveries


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[str]:
    with serving(tmp_path_factory.mktemp("ui")) as base:
        yield base


@contextmanager
def serving(workdir: Path) -> Iterator[str]:
    """The seeded server (docs/screenshots.py uses it too)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMDB_SYNC_")}
    env.update(
        {
            "CMDB_SYNC_DATABASE_URL": f"sqlite:///{workdir / 'ui.db'}",
            "CMDB_SYNC_WEBHOOK_TOKENS": WEBHOOK_TOKEN,
            "CMDB_SYNC_API_TOKENS": READER,
            "CMDB_SYNC_API_ADMIN_TOKENS": ADMIN,
        }
    )
    extra = workdir / "extra.json"
    extra.write_text(json.dumps(extra_deliveries(), ensure_ascii=False))
    seed = sorted((FIXTURES / "seed").glob("*.json"))
    imported = subprocess.run(
        [str(BIN / "cmdb-sync"), "import", *map(str, seed), str(extra)],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    assert imported.returncode == 0, imported.stdout + imported.stderr
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "cmdb-sync"), "serve", "--port", str(port)],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "serve.log").open("wb"),
    )
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, process, workdir / "serve.log")
    yield base
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture(scope="session")
def browser():
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.fail(
            f"the browser tests need Chromium at {CHROMIUM}: apt-get install chromium (or set CMDB_SYNC_TEST_CHROMIUM)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(base_url=server)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()
