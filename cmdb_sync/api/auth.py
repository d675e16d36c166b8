"""Who may read: bearer tokens checked by one guard on the whole app, so a route is closed unless
it says otherwise (``opt={"access": PUBLIC}``); admin-only routes say ``opt={"access": ADMIN}``."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from cmdb_sync.api.state import server_state
from cmdb_sync.errors import Forbidden, Unauthorized
from cmdb_sync.settings import Settings

ADMIN_TOKEN_SETTING = "CMDB_SYNC_API_ADMIN_TOKENS"
ACCESS = "access"
PUBLIC = "public"  # no bearer token: health, metrics, the OpenAPI document, the webhook (its own token)
READ = "read"  # the default: a read or admin token, when any is configured
ADMIN = "admin"  # an admin token


def token_accepted(given: str | None, accepted: list[str]) -> bool:
    """Constant-time comparison against every accepted token, so timing reveals neither which nor how much."""
    if given is None:
        return False
    given_bytes = given.encode()
    matched = False
    for token in accepted:
        matched |= hmac.compare_digest(given_bytes, token.encode())
    return matched


@dataclass(frozen=True)
class Principal:
    is_admin: bool

    def require_admin(self, what: str) -> None:
        if not self.is_admin:
            msg = f"{what} needs a token from {ADMIN_TOKEN_SETTING}"
            raise Forbidden(msg)


def identify(settings: Settings, authorization: str | None) -> Principal:
    """Who is asking. With no API token configured the API is open (not admin: nothing secret shows)."""
    readers, admins = settings.api_tokens, settings.api_admin_tokens
    token = None
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            msg = "Authorization: expected 'Bearer <token>'"
            raise Unauthorized(msg)
        token = credentials.strip()
    if token is not None and token_accepted(token, admins):
        return Principal(is_admin=True)
    if not readers and not admins:
        return Principal(is_admin=False)
    if token is None:
        msg = "Authorization: a bearer token is required"
        raise Unauthorized(msg)
    if token_accepted(token, readers):
        return Principal(is_admin=False)
    msg = "Authorization: token not accepted"
    raise Unauthorized(msg)


async def require_token(connection: ASGIConnection, handler: BaseRouteHandler) -> None:  # type: ignore[type-arg]
    """The app's guard: every route needs a read token unless it is marked public. Async, though it
    never waits: Litestar runs a sync guard in its thread pool, a hop per request (measured: 8% of
    a webhook delivery's time in the event loop)."""
    access = handler.opt.get(ACCESS, READ)
    if access == PUBLIC:
        return
    principal = identify(server_state(connection).settings, connection.headers.get("authorization"))
    if access == ADMIN:
        principal.require_admin(handler.opt.get("admin_what", "this route"))
    connection.state.principal = principal


def provide_principal(request: Request) -> Principal:  # type: ignore[type-arg]
    """The guard's answer, for handlers that decide more (``reveal=true``)."""
    return request.state.principal  # type: ignore[no-any-return]
