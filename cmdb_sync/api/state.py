"""What one server process holds: its settings, its database, its metrics. Built once by ``create_app``."""

from __future__ import annotations

import gc
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from litestar.connection import ASGIConnection

from cmdb_sync.db import Database
from cmdb_sync.group_commit import GroupCommitWriter
from cmdb_sync.handoff import WRITER_SOCKET_ENV, RemoteWriter, Writer
from cmdb_sync.metrics import Metrics
from cmdb_sync.partitions import keep_months_ahead
from cmdb_sync.settings import Settings
from cmdb_sync.supervision import watch_parent

if TYPE_CHECKING:
    from cmdb_sync.read.hot import AsyncReads


@dataclass
class ServerState:
    settings: Settings
    database: Database
    metrics: Metrics
    writer: Writer
    async_reads: AsyncReads | None = None  # PostgreSQL: the hot read path's pools (read.hot)
    stopping: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerState:
        database = Database.open(
            settings.database_url, pool_size=settings.db_pool_size, read_url=settings.read_database_url
        )
        async_reads = None
        if database.engine.dialect.name == "postgresql":
            from cmdb_sync.read.hot import AsyncReads

            async_reads = AsyncReads(settings.database_url, settings.read_database_url, settings.db_pool_size)
        # under `cmdb-sync serve`, the serve process writes for every worker (handoff); elsewhere
        # (the tests, another ASGI server) this process keeps a writer of its own
        socket_path = os.environ.get(WRITER_SOCKET_ENV)
        writer = RemoteWriter(socket_path) if socket_path else GroupCommitWriter(database.engine)
        return cls(settings, database, Metrics(), writer, async_reads)

    async def start(self) -> None:
        watch_parent()
        self.writer.start()
        keep_months_ahead(self.database.engine, self.stopping)
        if self.async_reads is not None:
            await self.async_reads.open()

    async def stop(self) -> None:
        """Write what is waiting, then let the connections go."""
        self.stopping.set()
        self.writer.stop()
        if self.async_reads is not None:
            await self.async_reads.close()
        self.database.dispose()


def set_aside_what_lives_forever() -> None:
    """Move every object alive once the app has started (modules, the app, its routes, the
    engines...) out of the collector's sight: they live as long as the process. Requests make
    reference cycles (SQLAlchemy's statements, Litestar's scopes), so the oldest generation is
    collected every second or so under load, and each time it walked all of these: 100 to 120 ms
    pauses, the p99 of the list routes (measured: the artifact filter's p99 117 -> 39 ms at 4
    connections, the full collections 14 ms at most). Only in the server's workers (``app_factory``):
    a process that starts many apps (the tests) would keep each one's cycles for good."""
    gc.collect()
    gc.freeze()


def server_state(connection: ASGIConnection) -> ServerState:  # type: ignore[type-arg]
    return connection.app.state.server  # type: ignore[no-any-return]
