"""``POST /webhooks/appstack``: authenticate, read the body within its limit, hand it to ingest.

Most deliveries never reach the route's handler: ``receiving_directly``, the route's own ASGI
middleware, receives one that carries an accepted token and a ``Content-Length`` within the limit
(as AppStack sends them), reading it off the ASGI messages and answering with one encoded
document. py-spy of a worker under load put 28% of its Python time (~90 us a delivery) in
Litestar's routing, guard, signature and response building for this route, more than
cmdb-sync's own handling. Everything else (no or a wrong token, no length, too long) goes on to
the handler, whose answers are the route's reference; both hand over and answer with the same
functions (``authenticate``, ``hand_over``).
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Literal

import msgspec
from litestar import Request, Response, post
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import ASGIApp, Message, Receive, Scope, Send
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


def authenticated(state: ServerState, headers: dict[str, str]) -> bool:
    """The delivery carries an accepted token, or none is needed."""
    tokens = state.settings.webhook_tokens
    return not tokens or token_accepted(header(headers, "X-AppStack-Token"), tokens)


def authenticate(state: ServerState, headers: dict[str, str]) -> None:
    """``authenticated``, or a 401 that says whether the token was missing or not accepted."""
    if authenticated(state, headers):  # no token needed only with CMDB_SYNC_WEBHOOK_ALLOW_UNAUTHENTICATED=true
        return
    if header(headers, "X-AppStack-Token") is None:
        state.metrics.reject("missing_token")
        msg = "X-AppStack-Token: missing"
        raise Unauthorized(msg, challenge="X-AppStack-Token")
    state.metrics.reject("wrong_token")
    msg = "X-AppStack-Token: not accepted"
    raise Unauthorized(msg, challenge="X-AppStack-Token")


def acknowledge(result: IngestResult) -> tuple[int, dict[str, str]]:
    """The status code and the ``WebhookAck``, built as the dict it serialises to: the model
    documents it, and validating what this process made itself would only cost time on the
    hottest route."""
    status_code = 202 if result.status.acknowledged_as_accepted else 200
    ack = {"event_id": result.event_id, "status": result.status.value}
    if result.error is not None:
        ack["error"] = result.error
    return status_code, ack


def body_timeout(state: ServerState) -> RequestTimeout:
    state.metrics.reject("body_timeout")
    msg = f"body: not received within {state.settings.body_timeout_seconds} s (CMDB_SYNC_BODY_TIMEOUT_SECONDS)"
    return RequestTimeout(msg)


async def hand_over(state: ServerState, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str]]:
    """Hand the delivery to the writer, count it, and what to answer: only once it is written."""
    started = perf_counter()
    try:
        _plain(headers)
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


def _plain(headers: dict[str, str]) -> None:
    """A compressed body is refused as such, not as "not valid JSON": AppStack sends its bodies
    plain, and the journal keeps what arrived, as it arrived."""
    encoding = (headers.get("content-encoding") or "identity").strip().lower()  # ASGI's names are lower case
    if encoding != "identity":
        msg = f"Content-Encoding: {encoding} is not accepted: send the body uncompressed"
        raise BadDelivery(msg, field="Content-Encoding")


_encode = msgspec.json.Encoder().encode
_JSON = (b"content-type", b"application/json")


def receiving_directly(app: ASGIApp) -> ASGIApp:
    """The route's middleware (see the module's docstring): it answers itself a delivery whose
    token is accepted and whose ``Content-Length`` is within the limit, and passes every other
    request on to ``app``, the handler, untouched (nothing of its body read). Its errors are
    raised as the handler's are, and Litestar answers them with the same problem details."""

    async def receiving(scope: Scope, receive: Receive, send: Send) -> None:
        state: ServerState = scope["app"].state.server
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:  # as dict(request.headers): the first of a repeated one
            headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        if not _length_within(headers.get("content-length", ""), state.settings.max_body_bytes) or not (
            authenticated(state, headers)
        ):
            await app(scope, receive, send)
            return
        try:
            async with asyncio.timeout(state.settings.body_timeout_seconds):
                raw = await _body(receive)
        except TimeoutError:
            raise body_timeout(state) from None
        if raw is None:
            return  # the sender went away before it had sent the body: nobody to answer
        status_code, ack = await hand_over(state, headers, raw)
        document = _encode(ack)
        length_header = (b"content-length", str(len(document)).encode())
        await send({"type": "http.response.start", "status": status_code, "headers": [_JSON, length_header]})
        await send({"type": "http.response.body", "body": document})

    return receiving


def _length_within(length: str, limit: int) -> bool:
    """A ``Content-Length`` of plain digits (at most 18: no number too long to convert) within ``limit``."""
    return 0 < len(length) <= 18 and length.isascii() and length.isdigit() and int(length) <= limit


async def _body(receive: Receive) -> bytes | None:
    """The request's body, as the server delivers it (never more than its ``Content-Length``);
    None when the sender disconnects first."""
    chunks = []
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


@post(
    "/webhooks/appstack",
    middleware=[receiving_directly],
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
        raise body_timeout(state) from None
    except RequestEntityTooLarge:
        state.metrics.reject("too_large")
        msg = f"body: larger than the {state.settings.max_body_bytes} bytes accepted (CMDB_SYNC_MAX_BODY_BYTES)"
        raise PayloadTooLarge(msg) from None
    status_code, ack = await hand_over(state, headers, raw)
    return Response(ack, status_code=status_code)  # type: ignore[arg-type]
