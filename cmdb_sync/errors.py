"""One base class for every error a caller can see; ``api.problems`` maps them to RFC 9457."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


class CmdbSyncError(Exception):
    """A domain error with the HTTP status it stands for at the boundary."""

    status_code = 500
    title = "Internal error"

    def __init__(self, detail: str, **extra: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class BadDelivery(CmdbSyncError):
    status_code = 400
    title = "Bad delivery"


class BadRequest(CmdbSyncError):
    status_code = 400
    title = "Bad request"


class Unauthorized(CmdbSyncError):
    status_code = 401
    title = "Unauthorized"


class Forbidden(CmdbSyncError):
    status_code = 403
    title = "Forbidden"


class NotFound(CmdbSyncError):
    status_code = 404
    title = "Not found"


class Ambiguous(CmdbSyncError):
    status_code = 409
    title = "Ambiguous name"


class Archived(CmdbSyncError):
    status_code = 410
    title = "Archived"


class RequestTimeout(CmdbSyncError):
    status_code = 408
    title = "Request timeout"


class PayloadTooLarge(CmdbSyncError):
    status_code = 413
    title = "Payload too large"


class DatabaseUnavailable(CmdbSyncError):
    status_code = 503
    title = "Database unavailable"
    connection_lost = False  # the connection itself failed: retrying the batch's deliveries one by one is pointless


def the_one(rows: Sequence[T], what: str, org_id: str | None) -> T:
    """The one object a name or sn stands for: 404 when none, 409 listing the orgs when several.

    ``rows`` hold an ``org_id`` each and come sorted by it."""
    if not rows:
        where = f" in org {org_id!r}" if org_id is not None else ""
        msg = f"{what} not found{where}"
        raise NotFound(msg)
    if len(rows) > 1:
        orgs = [row.org_id for row in rows]  # type: ignore[attr-defined]
        msg = f"{what} exists in {len(orgs)} orgs: pass org_id to choose one"
        raise Ambiguous(msg, orgs=orgs)
    return rows[0]


class ProjectionError(Exception):
    """The delivery was journaled but cannot be projected: it is kept as ``failed``."""
