"""What one server process holds: its settings, its database, its metrics. Built once by ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
from litestar.connection import ASGIConnection

from cmdb_sync.db import Database
from cmdb_sync.metrics import Metrics
from cmdb_sync.settings import Settings


@dataclass
class ServerState:
    settings: Settings
    database: Database
    metrics: Metrics = field(default_factory=Metrics)
    # deliveries beyond the pool wait here, in the event loop, not on a pool checkout timeout
    ingest_limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(10))

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerState:
        database = Database.open(settings.database_url, pool_size=settings.db_pool_size)
        return cls(settings, database, Metrics(), anyio.CapacityLimiter(settings.db_pool_size))


def server_state(connection: ASGIConnection) -> ServerState:  # type: ignore[type-arg]
    return connection.app.state.server  # type: ignore[no-any-return]
