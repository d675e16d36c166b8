"""Liveness, readiness and metrics: what an orchestrator and Prometheus poll."""

from __future__ import annotations

import anyio
from litestar import Request, Response, get
from pydantic import BaseModel
from sqlalchemy import text

from cmdb_sync.api.schemas import problem_responses
from cmdb_sync.errors import DatabaseUnavailable
from cmdb_sync.migrate import current_revision, head_revision
from cmdb_sync.services import Services


class Health(BaseModel):
    status: str
    revision: str | None = None


@get("/healthz", summary="Liveness: the process answers", tags=["operations"])
async def healthz() -> Health:
    return Health(status="ok")


def _readiness(services: Services) -> Health:
    with services.engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    current, head = current_revision(services.engine), head_revision()
    if current != head:
        msg = f"database schema is at {current or 'no revision'}, not at {head}: run `cmdb-sync db upgrade`"
        raise DatabaseUnavailable(msg)
    return Health(status="ready", revision=current)


@get(
    "/readyz",
    summary="Readiness: the database answers and its schema is at the newest migration",
    tags=["operations"],
    responses=problem_responses(503),
)
async def readyz(request: Request) -> Health:
    return await anyio.to_thread.run_sync(_readiness, request.app.state.services)


@get("/metrics", summary="Prometheus metrics", tags=["operations"], media_type="text/plain; version=0.0.4")
async def metrics(request: Request) -> Response[bytes]:
    services: Services = request.app.state.services
    return Response(services.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")
