"""Reads from a streaming replica (CMDB_SYNC_READ_DATABASE_URL), against a real one that this test
makes itself: a throwaway primary on a port of its own, and `pg_basebackup -R` of it started as a
standby on another; never the shared server."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
from litestar.testing import TestClient
from sqlalchemy.engine import make_url

from cmdb_sync import migrate
from cmdb_sync.app import create_app
from tests.conftest import _find_bindir, free_port, make_settings, post_delivery
from tests.helpers import env_event

pytestmark = pytest.mark.postgres_only


def dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def replica(throwaway_postgres):
    """The standby's URL, streaming from the throwaway primary."""
    primary = throwaway_postgres
    bindir = _find_bindir()
    standby = primary.base / "standby"
    subprocess.run(
        [*primary.as_user, str(bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
         "-D", str(standby), "-R", "-X", "stream"],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    pg_ctl = [*primary.as_user, str(bindir / "pg_ctl"), "-D", str(standby)]
    options = f"-p {port} -k {primary.base} -c listen_addresses=127.0.0.1 -c fsync=off -c hot_standby=on"
    log = primary.base / "standby.log"
    subprocess.run([*pg_ctl, "-o", options, "-l", str(log), "-w", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", pg_ctl
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(standby, ignore_errors=True)


def eventually(check, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the replica did not catch up"
        time.sleep(0.1)


def test_reads_go_to_the_replica_and_a_reader_may_ask_for_the_primary(throwaway_postgres, replica) -> None:
    replica_url, pg_ctl = replica
    migrate.upgrade(throwaway_postgres.url)
    settings = make_settings(throwaway_postgres.url, read_database_url=replica_url)
    path = "/api/v1/apps/shop/envs/prod"
    with TestClient(create_app(settings)) as client:
        assert post_delivery(client, env_event("Create", 1000, event_id="e1")).status_code == 200
        eventually(lambda: client.get(path).status_code == 200)

        with psycopg.connect(dsn(replica_url), autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_pause()")
        try:
            update = env_event("Update", 2000, event_id="e2", lock_by="ops")
            assert post_delivery(client, update).status_code == 200  # writes go to the primary
            assert client.get(path).json()["lock_by"] is None  # the paused replica has not seen it
            assert client.get(path, headers={"X-Read-From": "primary"}).json()["lock_by"] == "ops"
            ready = client.get("/readyz").json()
            assert ready["status"] == "ready" and ready["replica"]["lag_bytes"] > 0
        finally:
            with psycopg.connect(dsn(replica_url), autocommit=True) as conn:
                conn.execute("SELECT pg_wal_replay_resume()")
        eventually(lambda: client.get(path).json()["lock_by"] == "ops")
        eventually(lambda: client.get("/readyz").json()["replica"]["lag_bytes"] == 0)

        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        assert client.get("/readyz").status_code == 503  # reads cannot be served
        assert client.get(path).status_code == 503
        # deliveries still reach the primary, and the primary still answers who asks for it
        assert post_delivery(client, env_event("Update", 3000, event_id="e3", lock_by="x")).status_code == 200
        assert client.get(path, headers={"X-Read-From": "primary"}).json()["lock_by"] == "x"


def test_a_replica_setting_that_cannot_work_is_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cmdb_sync.cli import main

    result = CliRunner().invoke(
        main, ["serve"], env={"CMDB_SYNC_DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
                              "CMDB_SYNC_READ_DATABASE_URL": "postgresql://h/db", "CMDB_SYNC_WEBHOOK_TOKENS": "t"},
    )  # fmt: skip
    assert result.exit_code != 0
    assert "CMDB_SYNC_READ_DATABASE_URL: a SQLite database has no replica" in result.output
