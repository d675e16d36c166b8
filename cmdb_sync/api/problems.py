"""The one error path: every error a client sees is RFC 9457 problem details, mapped here."""

from __future__ import annotations

import logging
from typing import Any

from litestar.exceptions import ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsException, ProblemDetailsPlugin
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DataError, SQLAlchemyError

from cmdb_sync.errors import BadRequest, CmdbSyncError, DatabaseUnavailable

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "5"


def domain_problem(exc: CmdbSyncError) -> ProblemDetailsException:
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if isinstance(exc, DatabaseUnavailable) else None
    if exc.status_code == 401:
        headers = {"WWW-Authenticate": exc.extra.pop("challenge", "Bearer")}
    return ProblemDetailsException(
        status_code=exc.status_code,
        title=exc.title,
        detail=exc.detail,
        extra=dict(exc.extra) or None,
        headers=headers,
    )


def validation_problem(exc: ValidationException) -> ProblemDetailsException:
    """A parameter Litestar could not validate (``limit=0``): one line naming the field, as the
    house's own 400s do."""
    problems = exc.extra if isinstance(exc.extra, list) else []
    fields = [p.get("key") for p in problems if isinstance(p, dict) and p.get("key")]
    detail = "; ".join(f"{p.get('key')}: {p.get('message')}" for p in problems if isinstance(p, dict)) or str(
        exc.detail
    )
    extra = {"field": fields[0]} if len(fields) == 1 else ({"fields": fields} if fields else {})
    return domain_problem(BadRequest(detail, **extra))


def database_problem(exc: SQLAlchemyError) -> ProblemDetailsException:
    log.warning("database error answered 503: %s", exc)
    return domain_problem(DatabaseUnavailable("database unavailable; retry later"))


def data_problem(exc: DataError) -> ProblemDetailsException:
    log.info("value refused by the database: %s", exc.orig)
    return domain_problem(BadRequest("a value in the request cannot be used by the database"))


def unexpected_problem(exc: Exception) -> ProblemDetailsException:
    log.exception("unexpected error", exc_info=exc)
    return ProblemDetailsException(status_code=500, title="Internal error", detail="unexpected error; it was logged")


def problem_details_plugin() -> ProblemDetailsPlugin:
    return ProblemDetailsPlugin(
        ProblemDetailsConfig(
            enable_for_all_http_exceptions=True,
            exception_to_problem_detail_map={
                CmdbSyncError: domain_problem,
                ValidationException: validation_problem,
                SQLAlchemyError: database_problem,
                DataError: data_problem,
                Exception: unexpected_problem,
            },
        )
    )


class ProblemDetails(BaseModel):
    """RFC 9457 problem details: every error of this API. Extra members (``field``, ``orgs``,
    ``unknown``, ``extra``) say more where there is more to say."""

    model_config = ConfigDict(extra="allow")

    status: int
    title: str | None = None
    detail: str | None = None
    type: str | None = None
    instance: str | None = None


def problem_responses(*statuses: int) -> dict[int, Any]:
    """OpenAPI entries for the problem-details answers a route can give."""
    descriptions = {
        400: "Bad request: an unknown parameter or a bad value",
        401: "Missing or wrong token",
        403: "The token may not do this",
        404: "No such object",
        408: "The body did not arrive in time",
        409: "The name exists in several orgs: pass org_id",
        410: "as_of is before what an archive left of the journal: the problem says from when it can be read",
        413: "Body too large",
        503: "Database unavailable; retry later",
    }
    return {
        status: ResponseSpec(
            data_container=ProblemDetails,
            description=descriptions[status],
            media_type="application/problem+json",
            generate_examples=False,
        )
        for status in statuses
    }


LIST_PROBLEMS = problem_responses(400, 401, 403, 409, 503)
ONE_PROBLEMS = problem_responses(400, 401, 403, 404, 409, 503)
NESTED_LIST_PROBLEMS = ONE_PROBLEMS  # a list under an app answers 404 when the app is not there
AS_OF_LIST_PROBLEMS = problem_responses(400, 401, 403, 409, 410, 503)  # a route that takes as_of
AS_OF_ONE_PROBLEMS = problem_responses(400, 401, 403, 404, 409, 410, 503)
