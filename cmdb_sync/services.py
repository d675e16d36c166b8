"""What a running server holds: settings, the database, metrics. Built once by ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from cmdb_sync.db import make_engine, make_read_session_factory, make_session_factory
from cmdb_sync.metrics import Metrics
from cmdb_sync.settings import Settings


@dataclass
class Services:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    read_session_factory: sessionmaker[Session]
    metrics: Metrics
    ingest_limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(10))

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
        return cls(
            settings,
            engine,
            make_session_factory(engine),
            make_read_session_factory(engine),
            Metrics(),
            # deliveries beyond the pool wait here, in the event loop, not on a pool checkout timeout
            anyio.CapacityLimiter(settings.db_pool_size),
        )
