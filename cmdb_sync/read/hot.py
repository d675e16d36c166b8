"""The most read routes on PostgreSQL, on the event loop through an asyncio psycopg pool: ``GET
/api/v1/apps/{app}/envs/{env}`` (one prepared statement whose answer is the env's JSON) and the
pages of ``GET /api/v1/envs`` (one statement whose rows are the envs' JSON).

The same SQLAlchemy statement as ``inventory.get_env``'s document form, compiled once per shape;
what differs is the way there: no worker thread, no ORM session, no pool ping, no transaction
(each statement reads its own snapshot under READ COMMITTED anyway). Measured against the sync
path under 16 connections (bench/README.md). Every other read, and these on SQLite or with
``as_of``, goes the sync way.

A page's statement is built per request (its filters vary), but compiled once per shape: the
same SQLAlchemy cache key that the sync path's compiled cache uses (compiling it took 3 ms).
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy import Select
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.engine import Compiled, make_url

from cmdb_sync.db import describe_error
from cmdb_sync.errors import DatabaseUnavailable
from cmdb_sync.read.common import Window
from cmdb_sync.read.documents import Serialized
from cmdb_sync.read.inventory import env_document_statement, envs_document_page, envs_page_statement, the_env

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
        rows = await _fetch(self._reading(primary), sql, params)
        _, _, doc = the_env(rows, app, env, org_id)
        return Serialized(doc.encode())

    async def envs_page(self, stmt: Select[Any], window: Window, *, primary: bool) -> Serialized:
        """A page of ``GET /api/v1/envs`` (``inventory.envs_statement``), as the sync path answers it."""
        sql, params = _compiled(envs_page_statement(stmt, window))
        return envs_document_page(await _fetch(self._reading(primary), sql, params), window)

    def _reading(self, primary: bool) -> AsyncConnectionPool:
        pool = self.primary if primary or self.replica is None else self.replica
        if pool is None:  # not started: the app's startup opens the pools
            raise DatabaseUnavailable(UNAVAILABLE)
        return pool


_DIALECT = psycopg_dialect.dialect()
_SHAPES: dict[Any, Compiled] = {}
MAX_SHAPES = 256  # shapes differ by the filters given (how many labels...): a bound, not a cache policy


def _compiled(stmt: Select[Any]) -> tuple[str, dict[str, Any]]:
    """The statement as psycopg takes it, and its parameters: compiled once per shape."""
    key = stmt._generate_cache_key()  # noqa: SLF001 - what Connection.execute's compiled cache keys on
    if key is None:  # pragma: no cover - every statement of these routes can be cached
        compiled = stmt.compile(dialect=_DIALECT)
        return compiled.string, compiled.construct_params(_check=False)
    compiled = _SHAPES.get(key.key)
    if compiled is None:  # compiled with its cache key, so that another statement's values fit it
        compiled = _DIALECT.statement_compiler(_DIALECT, stmt, cache_key=key)
        if len(_SHAPES) < MAX_SHAPES:
            _SHAPES[key.key] = compiled
    return compiled.string, compiled.construct_params(extracted_parameters=key.bindparams, _check=False)


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
