"""The journal as the API serves it (admin only): deliveries newest received first, and one whole."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cmdb_sync.errors import NotFound
from cmdb_sync.models import Event
from cmdb_sync.read.common import Window
from cmdb_sync.read.pagination import paginate
from cmdb_sync.read.views import EventDetailOut, EventOut, Page


@dataclass(frozen=True)
class EventFilters:
    kind: str | None = None
    action: str | None = None
    app: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def event_out(event: Event) -> EventOut:
    return EventOut.model_validate(event)


def list_events(session: Session, window: Window, filters: EventFilters) -> Page[EventOut]:
    """The journal, newest received first; ``since``/``until`` bound the event time (until exclusive)."""
    stmt = select(Event)
    for column, value in (
        (Event.kind, filters.kind),
        (Event.action, filters.action),
        (Event.app, filters.app),
        (Event.status, filters.status),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if filters.since is not None:
        stmt = stmt.where(Event.time >= filters.since)
    if filters.until is not None:
        stmt = stmt.where(Event.time < filters.until)
    rows, next_cursor = paginate(
        session, stmt, [Event.received_at, Event.id], limit=window.limit, cursor=window.cursor, descending=True
    )
    return Page(items=[event_out(row[0]) for row in rows], next_cursor=next_cursor)


def get_event(session: Session, event_id: str) -> EventDetailOut:
    event = session.get(Event, event_id)
    if event is None:
        msg = f"event {event_id!r} not found"
        raise NotFound(msg)
    return EventDetailOut(**event_out(event).model_dump(), headers=event.headers, body=event.parsed_body)
