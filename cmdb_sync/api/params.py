"""What every read route shares: its query parameters, the refusal of unknown ones, and the
read session it is given (one per request, closed after it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, TypeVar

from litestar import Request, Response
from litestar.enums import MediaType
from litestar.params import QueryParameter
from sqlalchemy.orm import Session

from cmdb_sync.api.auth import Principal
from cmdb_sync.api.state import server_state
from cmdb_sync.errors import BadRequest
from cmdb_sync.read.documents import Serialized
from cmdb_sync.read.pagination import MAX_LIMIT
from cmdb_sync.times import as_utc

T = TypeVar("T")

Limit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description=f"page size, at most {MAX_LIMIT}")]
Cursor = Annotated[str | None, QueryParameter(description="next_cursor of the previous page")]
OrgId = Annotated[str | None, QueryParameter(description="the org, when the name exists in several")]
IncludeDeleted = Annotated[bool, QueryParameter(description="also list deleted objects")]
AsOfParam = Annotated[
    str | None,
    QueryParameter(
        description="the state as it was at this event time (ISO-8601 with an offset, or epoch milliseconds)"
    ),
]
Reveal = Annotated[bool, QueryParameter(description="serve variable values (admin token only)")]


READ_FROM_HEADER = "x-read-from"
_QUERY_NAMES = "cmdb_sync_query_names"  # where a route's query parameter names are kept (its opt)


def provide_db(request: Request) -> Iterator[Session]:  # type: ignore[type-arg]
    """A read session for the request: on SQLite it reads a snapshot beside the writer; with a
    read replica configured it reads there, unless the request says ``X-Read-From: primary``
    (a reader that must see a delivery it has just had acknowledged)."""
    with read_session(request) as session:
        yield session


def read_session(request: Request) -> Session:  # type: ignore[type-arg]
    """``provide_db``'s session, for a handler that only sometimes needs one (close it: ``with``)."""
    database = server_state(request).database
    return (database.primary_read_sessions if reads_primary(request) else database.read_sessions)()


def reads_primary(request: Request) -> bool:  # type: ignore[type-arg]
    """The request asks to read the primary (``X-Read-From: primary``), not the replica."""
    return request.headers.get(READ_FROM_HEADER, "").strip().lower() == "primary"


async def reject_unknown_query_parameters(request: Request) -> None:  # type: ignore[type-arg]
    """Unknown query parameters are a 400, not silently ignored: a typo must not widen a query.
    NUL, which no stored name contains, is refused before it reaches the database."""
    handler = request.route_handler
    allowed = handler.opt.get(_QUERY_NAMES)
    if allowed is None:  # the route's query parameters, worked out once per route
        not_query = {"self", "request", *handler.resolve_dependencies(), *request.path_params}
        allowed = handler.opt[_QUERY_NAMES] = frozenset(
            getattr(field.kwarg_definition, "name", None) or name
            for name, field in handler.parsed_fn_signature.parameters.items()
            if name not in not_query
        )
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        msg = f"unknown query parameter(s): {', '.join(unknown)}"
        raise BadRequest(msg, unknown=unknown)
    await reject_nul(request)


async def reject_nul(request: Request) -> None:  # type: ignore[type-arg]
    """NUL, which no stored name contains (and PostgreSQL cannot compare), is refused up front."""
    named = [*request.path_params.items(), *request.query_params.multi_items()]
    holding = sorted({name for name, value in named if "\x00" in str(value)})
    if holding:
        msg = f"{', '.join(holding)}: may not contain U+0000 (stored names hold U+FFFD in its place)"
        raise BadRequest(msg, **({"field": holding[0]} if len(holding) == 1 else {"fields": holding}))


def answered(result: T) -> T | Response[bytes]:
    """A read's result as the handler returns it: JSON the database already built goes out as it is."""
    if isinstance(result, Serialized):
        return Response(result.body, media_type=MediaType.JSON)
    return result


def time_bound(value: datetime | None, field: str) -> datetime | None:
    """A time bound in UTC (read as UTC without an offset); one that leaves the range of time once
    in UTC is a 400, not a database error."""
    if value is None:
        return None
    try:
        return as_utc(value).astimezone(UTC)
    except OverflowError:
        msg = f"{field}: out of range once converted to UTC"
        raise BadRequest(msg, field=field) from None


def allow_reveal(who: Principal, reveal: bool) -> bool:
    if reveal:
        who.require_admin("reveal=true")
    return reveal
