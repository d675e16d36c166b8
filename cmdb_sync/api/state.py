"""What one server process holds: its settings, its database, its metrics. Built once by ``create_app``."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from litestar.connection import ASGIConnection

from cmdb_sync.db import Database
from cmdb_sync.group_commit import GroupCommitWriter
from cmdb_sync.metrics import Metrics
from cmdb_sync.partitions import keep_months_ahead
from cmdb_sync.settings import Settings
from cmdb_sync.supervision import watch_parent


@dataclass
class ServerState:
    settings: Settings
    database: Database
    metrics: Metrics
    writer: GroupCommitWriter
    stopping: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerState:
        database = Database.open(
            settings.database_url, pool_size=settings.db_pool_size, read_url=settings.read_database_url
        )
        return cls(settings, database, Metrics(), GroupCommitWriter(database.engine))

    def start(self) -> None:
        watch_parent()
        self.writer.start()
        keep_months_ahead(self.database.engine, self.stopping)

    def stop(self) -> None:
        """Write what is waiting, then let the connections go."""
        self.stopping.set()
        self.writer.stop()
        self.database.dispose()


def server_state(connection: ASGIConnection) -> ServerState:  # type: ignore[type-arg]
    return connection.app.state.server  # type: ignore[no-any-return]
