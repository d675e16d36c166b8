"""What every read query shares: the page window, LIKE patterns, and "the one object of that name"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from cmdb_sync.errors import the_one
from cmdb_sync.models import App

MAX_ORGS_LISTED = 50


@dataclass(frozen=True)
class Window:
    """What every list takes: how many, from where, and whether tombstones are shown."""

    limit: int
    cursor: str | None
    include_deleted: bool = False


def like(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, its own ``%``, ``_`` and ``\\`` taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def one_named(session: Session, stmt: Select[Any], org_column: Any, what: str, org_id: str | None) -> Any:
    """The one row ``stmt`` finds for a name: 404 when none, 409 listing (up to 50 of) the orgs
    it exists in when several and no ``org_id`` chose one."""
    if org_id is not None:
        stmt = stmt.where(org_column == org_id)
    rows = session.scalars(stmt.order_by(org_column).limit(MAX_ORGS_LISTED)).all()
    return the_one(rows, what, org_id)


def resolve_app(session: Session, name: str, org_id: str | None, include_deleted: bool) -> App:
    """The one app a path names: 404 when none, 409 listing the orgs when the name is in several.
    Found once per session (a request): a page that lists several things of one app asks once."""
    key = ("resolved app", name, org_id, include_deleted)
    if key not in session.info:
        stmt = select(App).where(App.name == name)
        if not include_deleted:
            stmt = stmt.where(App.deleted_at.is_(None))
        session.info[key] = one_named(session, stmt, App.org_id, f"app {name!r}", org_id)
    return session.info[key]  # type: ignore[no-any-return]
