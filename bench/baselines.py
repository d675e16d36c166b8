"""The simplest handlers on the same stack, measured beside cmdb-sync in the same run.

- ``receiver``: Litestar + a psycopg pool under granian; each POST is one ``INSERT`` of the raw
  delivery and a commit (on SQLite: the same with the sqlite3 module, writers queued on a lock).
- ``reader``: ``GET /api/v1/apps/{app}/envs/{env}`` answered by one SQL query that returns the env
  and its labels as JSON, from cmdb-sync's own tables.

Both read BENCH_DATABASE (a psycopg DSN, or ``sqlite:///path``) and run as granian factories:
``granian --interface asgi --factory baselines:receiver``.
"""

from __future__ import annotations

import os
import sqlite3
import threading

import anyio
from litestar import Litestar, Request, Response, get, post

DATABASE = os.environ.get("BENCH_DATABASE", "")
SQLITE = DATABASE.startswith("sqlite:///")

CREATE = (
    "CREATE TABLE IF NOT EXISTS bench_raw_deliveries "
    "(id TEXT PRIMARY KEY, headers TEXT NOT NULL, body TEXT NOT NULL, received_at TEXT NOT NULL)"
)
INSERT_PG = "INSERT INTO bench_raw_deliveries VALUES (%s, %s, %s, now()) ON CONFLICT (id) DO NOTHING"
INSERT_SQLITE = "INSERT OR IGNORE INTO bench_raw_deliveries VALUES (?, ?, ?, datetime('now'))"
ENV_AS_JSON = """
SELECT json_build_object(
    'org_id', e.org_id, 'app_name', e.app_name, 'name', e.name, 'display_name', e.display_name,
    'lock_by', e.lock_by, 'resource_pool_name', e.resource_pool_name,
    'labels', (SELECT coalesce(json_agg(json_build_object('name', l.name, 'value', l.value) ORDER BY l.position), '[]')
               FROM env_labels l WHERE l.env_id = e.id))::text
FROM envs e WHERE e.app_name = %s AND e.name = %s
"""


def _pool():  # type: ignore[no-untyped-def]
    from psycopg_pool import AsyncConnectionPool

    return AsyncConnectionPool(DATABASE, min_size=10, max_size=10, open=False)


def receiver() -> Litestar:
    if SQLITE:
        return _sqlite_receiver()
    pool = _pool()

    async def startup() -> None:
        await pool.open()
        async with pool.connection() as conn, conn.transaction():
            # the workers start together: one creates the table, the others wait for it (the lock
            # is held to the commit: released before it, the next worker's CREATE ... IF NOT EXISTS
            # did not see the table yet and failed, and with it the baseline's start)
            await conn.execute("SELECT pg_advisory_xact_lock(4242)")
            await conn.execute(CREATE)

    async def shutdown() -> None:
        await pool.close()

    @post("/webhooks/appstack", status_code=200)
    async def receive(request: Request) -> dict[str, str]:
        body = await request.body()
        event_id = request.headers.get("x-bench-id", "") or str(id(body))
        async with pool.connection() as conn:
            await conn.execute(INSERT_PG, (event_id, dict(request.headers).__repr__(), body.decode()))
        return {"status": "stored"}

    return Litestar([receive], on_startup=[startup], on_shutdown=[shutdown])


def _sqlite_receiver() -> Litestar:
    path = DATABASE.removeprefix("sqlite:///")
    lock = threading.Lock()
    local = threading.local()

    def connection() -> sqlite3.Connection:
        if not hasattr(local, "conn"):
            local.conn = sqlite3.connect(path, timeout=30)
            local.conn.execute("PRAGMA journal_mode=WAL")
            local.conn.execute("PRAGMA synchronous=NORMAL")
            local.conn.execute(CREATE)
        return local.conn  # type: ignore[no-any-return]

    def store(event_id: str, headers: str, body: str) -> None:
        with lock:
            conn = connection()
            conn.execute(INSERT_SQLITE, (event_id, headers, body))
            conn.commit()

    @post("/webhooks/appstack", status_code=200)
    async def receive(request: Request) -> dict[str, str]:
        body = await request.body()
        event_id = request.headers.get("x-bench-id", "") or str(id(body))
        await anyio.to_thread.run_sync(store, event_id, repr(dict(request.headers)), body.decode())
        return {"status": "stored"}

    return Litestar([receive])


def reader() -> Litestar:
    pool = _pool()

    @get("/api/v1/apps/{app:str}/envs/{env:str}")
    async def one_env(app: str, env: str) -> Response[bytes]:
        async with pool.connection() as conn:
            row = await (await conn.execute(ENV_AS_JSON, (app, env))).fetchone()
        if row is None:
            return Response(b'{"status":404}', status_code=404, media_type="application/json")
        return Response(row[0].encode(), media_type="application/json")

    async def startup() -> None:
        await pool.open()

    async def shutdown() -> None:
        await pool.close()

    return Litestar([one_env], on_startup=[startup], on_shutdown=[shutdown])
