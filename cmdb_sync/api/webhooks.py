"""``POST /webhooks/appstack``: authenticate, read the body within its limit, hand it to ingest."""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Literal

from litestar import Request, Response, post
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi.datastructures import ResponseSpec
from pydantic import BaseModel

from cmdb_sync.api.auth import ACCESS, PUBLIC, token_accepted
from cmdb_sync.api.openapi import WEBHOOK_SECURITY, WebhookOperation
from cmdb_sync.api.problems import problem_responses
from cmdb_sync.api.state import ServerState, server_state
from cmdb_sync.errors import BadDelivery, DatabaseUnavailable, PayloadTooLarge, RequestTimeout, Unauthorized
from cmdb_sync.events import header
from cmdb_sync.ingest import Delivery, IngestResult
from cmdb_sync.times import now_utc


class WebhookAck(BaseModel):
    """What the sender gets back once the delivery is durably journaled."""

    event_id: str
    status: Literal["applied", "stale", "duplicate", "unsupported", "failed"]
    error: str | None = None


def authenticate(state: ServerState, headers: dict[str, str]) -> None:
    tokens = state.settings.webhook_tokens
    if not tokens:
        return  # only reachable with CMDB_SYNC_WEBHOOK_ALLOW_UNAUTHENTICATED=true
    given = header(headers, "X-AppStack-Token")
    if given is None:
        state.metrics.reject("missing_token")
        msg = "X-AppStack-Token: missing"
        raise Unauthorized(msg, challenge="X-AppStack-Token")
    if not token_accepted(given, tokens):
        state.metrics.reject("wrong_token")
        msg = "X-AppStack-Token: not accepted"
        raise Unauthorized(msg, challenge="X-AppStack-Token")


def acknowledge(result: IngestResult) -> Response[WebhookAck]:
    """The ``WebhookAck``, built as the dict it serialises to: the model documents it, and
    validating what this process made itself would only cost time on the hottest route."""
    status_code = 202 if result.status.acknowledged_as_accepted else 200
    ack = {"event_id": result.event_id, "status": result.status.value}
    if result.error is not None:
        ack["error"] = result.error
    return Response(ack, status_code=status_code)  # type: ignore[arg-type]


@post(
    "/webhooks/appstack",
    summary="Receive an AppStack webhook delivery",
    description=(
        "Journals the delivery, then projects it. 200: applied, stale or duplicate; 202: stored but "
        "not projected (unsupported kind or action, or a projection error). Errors are problem details."
    ),
    status_code=200,
    tags=["webhooks"],
    opt={ACCESS: PUBLIC},  # not the bearer tokens of the API: X-AppStack-Token, checked below
    security=WEBHOOK_SECURITY,
    operation_class=WebhookOperation,
    responses={
        202: ResponseSpec(data_container=WebhookAck, description="Journaled, not projected: unsupported or failed"),
        **problem_responses(400, 401, 408, 413, 503),
    },
)
async def receive_webhook(request: Request) -> Response[WebhookAck]:
    state = server_state(request)
    headers = dict(request.headers)
    authenticate(state, headers)
    try:
        async with asyncio.timeout(state.settings.body_timeout_seconds):
            raw = await request.body()
    except TimeoutError:
        state.metrics.reject("body_timeout")
        msg = f"body: not received within {state.settings.body_timeout_seconds} s (CMDB_SYNC_BODY_TIMEOUT_SECONDS)"
        raise RequestTimeout(msg) from None
    except RequestEntityTooLarge:
        state.metrics.reject("too_large")
        msg = f"body: larger than the {state.settings.max_body_bytes} bytes accepted (CMDB_SYNC_MAX_BODY_BYTES)"
        raise PayloadTooLarge(msg) from None
    started = perf_counter()
    try:
        result = await state.writer.submit(Delivery(headers, raw, now_utc()))
    except BadDelivery as exc:
        state.metrics.reject("bad_request")
        raise exc from None
    except DatabaseUnavailable:
        state.metrics.reject("database_unavailable")
        raise
    state.metrics.ingest_seconds.observe(perf_counter() - started)
    state.metrics.delivered(result.kind, result.action, result.status)
    if result.conflict:
        state.metrics.conflict()
    return acknowledge(result)
