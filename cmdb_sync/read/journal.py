"""The journal as the API serves it (admin only): deliveries newest received first, and one whole."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import LargeBinary, func, select
from sqlalchemy.orm import Session

from cmdb_sync.errors import NotFound
from cmdb_sync.models import Event, JournalArchive
from cmdb_sync.read.common import Window
from cmdb_sync.read.pagination import paginate
from cmdb_sync.read.views import EventDetailOut, EventOut, Page
from cmdb_sync.times import iso_utc


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


@dataclass(frozen=True)
class JournalShare:
    """One month's deliveries of one kind: how many, their bodies' size as received, and as stored
    (after PostgreSQL's compression; the same as received on SQLite)."""

    month: str
    kind: str
    deliveries: int
    body_bytes: int
    stored_bytes: int


def journal_stats(session: Session) -> list[JournalShare]:
    """The journal by received month and kind, oldest month first."""
    postgresql = session.get_bind().dialect.name == "postgresql"
    month = (
        func.to_char(func.timezone("UTC", Event.received_at), "YYYY-MM")
        if postgresql
        else func.strftime("%Y-%m", Event.received_at)
    )
    body_bytes = func.octet_length(Event.body) if postgresql else func.length(func.cast(Event.body, LargeBinary))
    stored = func.pg_column_size(Event.body) if postgresql else body_bytes
    stmt = (
        select(
            month.label("month"),
            Event.kind,
            func.count(),
            func.coalesce(func.sum(body_bytes), 0),
            func.coalesce(func.sum(stored), 0),
        )
        .group_by(month, Event.kind)
        .order_by(month, Event.kind)
    )
    return [JournalShare(m, kind, int(n), int(size), int(kept)) for m, kind, n, size, kept in session.execute(stmt)]


def journal_archives(session: Session) -> list[dict[str, Any]]:
    """Every ``journal archive``, oldest first, as JSON-able values."""
    rows = session.scalars(select(JournalArchive).order_by(JournalArchive.before)).all()
    return [
        {
            "before": iso_utc(row.before),
            "file": row.file,
            "sha256": row.sha256,
            "archived": row.archived,
            "kept": row.kept,
            "horizon": iso_utc(row.horizon) if row.horizon else None,
            "archived_at": iso_utc(row.archived_at),
            "finished_at": iso_utc(row.finished_at) if row.finished_at else None,
        }
        for row in rows
    ]
