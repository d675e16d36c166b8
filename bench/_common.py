"""What the benchmarks share: a database of their own, a journal filled in bulk, and a
`cmdb-sync serve` on loopback (every request stays on this machine)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from cmdb_sync.db import make_engine
from cmdb_sync.models import Event, EventId

TOKEN = "bench-token"
ADMIN = "bench-admin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


ADMIN_URL = os.environ.get("CMDB_SYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BENCH_DATABASE = f"cmdb_sync_bench_{os.getpid()}"


def _admin(statement: str) -> None:
    dsn = make_url(ADMIN_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement)


@contextmanager
def database(backend: str) -> Iterator[str]:
    """A fresh, empty database URL; a PostgreSQL one is dropped afterwards."""
    with tempfile.TemporaryDirectory() as workdir:
        if backend == "sqlite":
            yield f"sqlite:///{workdir}/bench.db"
            return
        _admin(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')
        _admin(f'CREATE DATABASE "{BENCH_DATABASE}"')
        try:
            yield make_url(ADMIN_URL).set(database=BENCH_DATABASE).render_as_string(hide_password=False)
        finally:
            _admin(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')


def fill_journal(url: str, deliveries: Iterator[tuple[dict[str, str], bytes]], batch: int = 2000) -> int:
    """Write deliveries straight into the journal (status applied), as a long-lived journal looks;
    `replay --rebuild` then builds the projections from it."""
    engine = make_engine(url)
    rows: list[dict[str, Any]] = []
    count = 0

    def flush() -> None:
        with engine.begin() as conn:
            conn.execute(insert(EventId), [{"id": row["id"], "received_at": row["received_at"]} for row in rows])
            conn.execute(insert(Event), rows)
        rows.clear()

    for headers, body in deliveries:
        parsed = json.loads(body)
        rows.append(
            {
                "id": parsed["id"],
                "kind": parsed["objectKind"],
                "action": headers["X-AppStack-Action"],
                "app": headers.get("X-AppStack-App"),
                "org_id": parsed["orgId"],
                "actor_id": "bench",
                "time": datetime.fromtimestamp(parsed["time"] / 1000, tz=UTC),
                "received_at": datetime.now(UTC),
                "status": "applied",
                "error": None,
                "headers": {k.lower(): v for k, v in headers.items() if k != "X-AppStack-Token"},
                "body": body.decode(),
            }
        )
        count += 1
        if len(rows) == batch:
            flush()
    if rows:
        flush()
    engine.dispose()
    return count


@contextmanager
def serving(url: str, workers: int = 1) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Yield the base URL and process of a server on ``url`` (migrated first); stop it afterwards."""
    with tempfile.TemporaryDirectory() as workdir:
        port = free_port()
        env = {
            **os.environ,
            "CMDB_SYNC_DATABASE_URL": url,
            "CMDB_SYNC_WEBHOOK_TOKENS": TOKEN,
            "CMDB_SYNC_API_ADMIN_TOKENS": ADMIN,
            "CMDB_SYNC_LOG_LEVEL": "WARNING",
        }
        cmd = [sys.executable, "-m", "cmdb_sync", "serve", "--migrate", "--port", str(port), "--workers", str(workers)]
        process = subprocess.Popen(cmd, env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            else:
                raise SystemExit("server did not become ready")
            yield base, process
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server: SIGTERM, and SIGKILL if it has not stopped 20 s later (granian's baseline on
    SQLite once hung on its way out, and took the whole run down with it)."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        print(f"  (process {process.pid} ignored SIGTERM for 20 s: killed)", file=sys.stderr)
        process.kill()
        process.wait()
