"""Liveness, readiness and metrics: what an orchestrator and Prometheus poll."""

from __future__ import annotations

import anyio
from litestar import Request, Response, get
from pydantic import BaseModel
from sqlalchemy import text

from cmdb_sync.api.auth import ACCESS, PUBLIC
from cmdb_sync.api.problems import problem_responses
from cmdb_sync.api.state import ServerState, server_state
from cmdb_sync.errors import DatabaseUnavailable
from cmdb_sync.migrate import behind_head, current_revision


class ReplicaHealth(BaseModel):
    """How far the read replica is behind the primary: WAL bytes not yet replayed, and the age of
    the last transaction it replayed (which also grows while the primary writes nothing)."""

    lag_bytes: int | None
    replayed_seconds_ago: float | None


class Health(BaseModel):
    status: str
    revision: str | None = None
    replica: ReplicaHealth | None = None


@get("/healthz", summary="Liveness: the process answers", tags=["operations"], opt={ACCESS: PUBLIC})
async def healthz() -> Health:
    return Health(status="ok")


def _readiness(state: ServerState) -> Health:
    engine = state.database.engine
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    behind = behind_head(engine)
    if behind:
        raise DatabaseUnavailable(behind)
    replica = _replica_health(state) if state.database.replica is not None else None
    return Health(status="ready", revision=current_revision(engine), replica=replica)


def _replica_health(state: ServerState) -> ReplicaHealth:
    """The replica answers (else not ready: reads would fail), and how far behind it is."""
    with state.database.engine.connect() as primary:
        written = primary.execute(text("SELECT pg_current_wal_lsn()")).scalar()
    with state.database.replica.connect() as replica:  # type: ignore[union-attr]
        lag_bytes, seconds = replica.execute(
            text(
                "SELECT pg_wal_lsn_diff(:written, pg_last_wal_replay_lsn())::bigint, "
                "EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float"
            ),
            {"written": written},
        ).one()
    return ReplicaHealth(lag_bytes=lag_bytes, replayed_seconds_ago=seconds)


@get(
    "/readyz",
    summary="Readiness: the database answers, its schema is at the newest migration, and the writer answers",
    tags=["operations"],
    responses=problem_responses(503),
    opt={ACCESS: PUBLIC},
)
async def readyz(request: Request) -> Health:
    state = server_state(request)
    health = await anyio.to_thread.run_sync(_readiness, state)
    await state.writer.check()  # deliveries need it as much as the database
    return health


@get(
    "/metrics",
    summary="Prometheus metrics",
    tags=["operations"],
    media_type="text/plain; version=0.0.4",
    opt={ACCESS: PUBLIC},
)
async def metrics(request: Request) -> Response[bytes]:
    return Response(server_state(request).metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")
