"""One base class for every error a caller can see; ``api.problems`` maps them to RFC 9457."""

from __future__ import annotations


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


class PayloadTooLarge(CmdbSyncError):
    status_code = 413
    title = "Payload too large"


class DatabaseUnavailable(CmdbSyncError):
    status_code = 503
    title = "Database unavailable"


class ProjectionError(Exception):
    """The delivery was journaled but cannot be projected: it is kept as ``failed``."""
