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


class Health(BaseModel):
    status: str
    revision: str | None = None


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
    return Health(status="ready", revision=current_revision(engine))


@get(
    "/readyz",
    summary="Readiness: the database answers and its schema is at the newest migration",
    tags=["operations"],
    responses=problem_responses(503),
    opt={ACCESS: PUBLIC},
)
async def readyz(request: Request) -> Health:
    return await anyio.to_thread.run_sync(_readiness, server_state(request))


@get(
    "/metrics",
    summary="Prometheus metrics",
    tags=["operations"],
    media_type="text/plain; version=0.0.4",
    opt={ACCESS: PUBLIC},
)
async def metrics(request: Request) -> Response[bytes]:
    return Response(server_state(request).metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")
