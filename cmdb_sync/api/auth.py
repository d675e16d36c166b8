"""Bearer tokens of the read API: who may read, who may also reveal values and read the journal."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from litestar import Request

from cmdb_sync.errors import Forbidden, Unauthorized
from cmdb_sync.services import Services

ADMIN_TOKEN_SETTING = "CMDB_SYNC_API_ADMIN_TOKENS"


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


def principal(request: Request) -> Principal:
    """Who is asking. With no API token configured the API is open (not admin: nothing secret shows)."""
    services: Services = request.app.state.services
    settings = services.settings
    readers, admins = settings.api_tokens, settings.api_admin_tokens
    authorization = request.headers.get("authorization")
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
