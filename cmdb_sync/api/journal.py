"""``/api/v1/events``: the journal, for admins only (bodies hold variable values)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from sqlalchemy.orm import Session

from cmdb_sync.api.auth import ACCESS, ADMIN
from cmdb_sync.api.openapi import API_SECURITY
from cmdb_sync.api.params import Cursor, Limit, reject_unknown_query_parameters, time_bound
from cmdb_sync.api.problems import LIST_PROBLEMS, ONE_PROBLEMS
from cmdb_sync.read import journal
from cmdb_sync.read.common import Window
from cmdb_sync.read.journal import EventFilters
from cmdb_sync.read.pagination import DEFAULT_LIMIT
from cmdb_sync.read.views import EventDetailOut, EventOut, Page


class JournalController(Controller):
    path = "/api/v1"
    tags = ["journal"]
    opt = {ACCESS: ADMIN, "admin_what": "the event journal"}
    before_request = reject_unknown_query_parameters
    security = API_SECURITY

    @get(
        "/events",
        responses=LIST_PROBLEMS,
        sync_to_thread=True,
        summary="The event journal, newest received first (admin)",
    )
    def list_events(
        self,
        db: NamedDependency[Session],
        kind: Annotated[str | None, QueryParameter(description="objectKind")] = None,
        action: Annotated[str | None, QueryParameter(description="X-AppStack-Action")] = None,
        app: Annotated[str | None, QueryParameter(description="X-AppStack-App")] = None,
        status: Annotated[str | None, QueryParameter(description="applied, stale, unsupported or failed")] = None,
        since: Annotated[datetime | None, QueryParameter(description="event time at or after (ISO-8601)")] = None,
        until: Annotated[datetime | None, QueryParameter(description="event time before (ISO-8601)")] = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[EventOut]:
        filters = EventFilters(
            kind=kind,
            action=action,
            app=app,
            status=status,
            since=time_bound(since, "since"),
            until=time_bound(until, "until"),
        )
        return journal.list_events(db, Window(limit, cursor), filters)

    @get(
        "/events/{event_id:str}",
        responses=ONE_PROBLEMS,
        sync_to_thread=True,
        summary="One journaled delivery: headers and body (admin)",
    )
    def get_event(self, db: NamedDependency[Session], event_id: FromPath[str]) -> EventDetailOut:
        return journal.get_event(db, event_id)
