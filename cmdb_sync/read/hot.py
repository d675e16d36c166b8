"""The most read route, ``GET /api/v1/apps/{app}/envs/{env}``, on PostgreSQL: on the event loop,
through an asyncio psycopg pool, one prepared statement whose answer is the env's JSON.

The same SQLAlchemy statement as ``inventory.get_env``'s document form, compiled once per shape;
what differs is the way there: no worker thread, no ORM session, no pool ping, no transaction
(each statement reads its own snapshot under READ COMMITTED anyway). Measured against the sync
path under 16 connections (bench/README.md). Every other read, and this one on SQLite or with
``as_of``, goes the sync way.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.engine import make_url

from cmdb_sync.db import describe_error
from cmdb_sync.errors import DatabaseUnavailable
from cmdb_sync.read.documents import Serialized
from cmdb_sync.read.inventory import env_document_statement, the_env

log = logging.getLogger(__name__)

POOL_WAIT_SECONDS = 2.0  # a request waits this long for a connection (all busy, or the server down), then 503
UNAVAILABLE = "database unavailable; retry later"


def _conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class AsyncReads:
    """The process's asyncio pools: the primary's, and the replica's when reads go there. Made
    anew each time the app starts (a pool once closed cannot open again)."""

    def __init__(self, url: str, read_url: str | None, size: int) -> None:
        self.urls = (url, read_url)
        self.size = size
        self.primary: AsyncConnectionPool | None = None
        self.replica: AsyncConnectionPool | None = None

    def _pool(self, url: str) -> AsyncConnectionPool:
        return AsyncConnectionPool(
            _conninfo(url),
            min_size=1,
            max_size=self.size,
            open=False,
            timeout=POOL_WAIT_SECONDS,
            kwargs={"autocommit": True},
        )

    async def open(self) -> None:
        url, read_url = self.urls
        self.primary = self._pool(url)
        self.replica = self._pool(read_url) if read_url else None
        for pool in self._pools():
            await pool.open(wait=False)

    async def close(self) -> None:
        for pool in self._pools():
            await pool.close()
        self.primary = self.replica = None

    def _pools(self) -> list[AsyncConnectionPool]:
        return [pool for pool in (self.primary, self.replica) if pool is not None]

    async def get_env(
        self, app: str, env: str, *, org_id: str | None, include_deleted: bool, primary: bool
    ) -> Serialized:
        """As ``inventory.get_env`` answers it: 404 for no app or no env, 409 for an app in several orgs."""
        sql, constants = _env_sql(include_deleted, org_id is not None)
        params = {**constants, "app": app, "env": env, "org": org_id}
        pool = self.primary if primary or self.replica is None else self.replica
        if pool is None:  # not started: the app's startup opens the pools
            raise DatabaseUnavailable(UNAVAILABLE)
        rows = await _fetch(pool, sql, params)
        _, _, doc = the_env(rows, app, env, org_id)
        return Serialized(doc.encode())


async def _fetch(pool: AsyncConnectionPool, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The rows, tried once more on a fresh connection when the first one had gone (the server
    restarted, a connection was cut): the pool drops a broken connection when it comes back."""
    for attempt in (1, 2):
        try:
            async with pool.connection() as conn:
                cursor = await conn.execute(sql, params)
                return await cursor.fetchall()
        except PoolTimeout as exc:
            log.warning("database unavailable: %s", exc)
            raise DatabaseUnavailable(UNAVAILABLE) from None
        except psycopg.OperationalError as exc:
            if attempt == 2:
                log.warning("database unavailable: %s", describe_error(exc))
                raise DatabaseUnavailable(UNAVAILABLE) from None
        except psycopg.Error as exc:  # a schema that is not there yet, and the like: as the sync path, 503
            log.warning("database error answered 503: %s", describe_error(exc))
            raise DatabaseUnavailable(UNAVAILABLE) from None
    raise AssertionError("unreachable")  # pragma: no cover


@cache
def _env_sql(include_deleted: bool, by_org: bool) -> tuple[str, dict[str, Any]]:
    """The document statement as psycopg takes it, and its constant parameters; the selected
    columns are ``app_org_id``, ``id`` and ``doc`` (the env's JSON), in that order."""
    stmt = env_document_statement(include_deleted, by_org)
    compiled = stmt.compile(dialect=psycopg_dialect.dialect())
    return compiled.string, compiled.construct_params(_check=False)
