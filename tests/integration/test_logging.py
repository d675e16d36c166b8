"""What a real server prints: one format for every line, an access log without the health probes."""

from __future__ import annotations

import json
import os
import subprocess
import time

import httpx
import pytest

from tests.conftest import WEBHOOK_TOKEN
from tests.integration.test_serve_faults import CMDB_SYNC, answers, free_port, wait_for

pytestmark = pytest.mark.faults


def served_log(tmp_path, *args: str, **env: str) -> list[str]:
    port = free_port()
    log = tmp_path / "server.log"
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CMDB_SYNC_")},
        "CMDB_SYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'log.db'}",
        "CMDB_SYNC_WEBHOOK_TOKENS": WEBHOOK_TOKEN,
        **env,
    }
    with log.open("w") as out:
        process = subprocess.Popen(
            [CMDB_SYNC, "serve", "--port", str(port), *args], env=environment, cwd=tmp_path, stderr=out, stdout=out
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: answers(base), 30, "the server answers")
            for _ in range(3):
                httpx.get(f"{base}/readyz")
            assert httpx.get(f"{base}/api/v1/apps").status_code == 200
            time.sleep(0.5)
        finally:
            process.terminate()
            process.wait(timeout=20)
    return [line for line in log.read_text().splitlines() if line.strip()]


def test_json_logs_are_one_object_a_line_and_the_access_log_leaves_out_probes(tmp_path) -> None:
    lines = served_log(tmp_path, "--log-format", "json", "--access-log")
    entries = [json.loads(line) for line in lines]  # every line is JSON, granian's included
    assert any(e["logger"] == "cmdb_sync" and "listening on" in e["message"] for e in entries)
    access = [e for e in entries if e["logger"] == "granian.access"]
    assert [e["path"] for e in access] == ["/api/v1/apps"]
    assert access[0]["status"] == 200 and access[0]["method"] == "GET"
    assert not [e for e in entries if e["logger"].startswith("alembic")]


def test_text_logs_without_access_log_by_default(tmp_path) -> None:
    lines = served_log(tmp_path, CMDB_SYNC_LOG_LEVEL="INFO")
    assert any("INFO cmdb_sync: listening on" in line for line in lines)
    assert not any("/api/v1/apps" in line for line in lines)
    assert not any("alembic" in line for line in lines)
