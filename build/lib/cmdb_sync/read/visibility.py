"""Whether a projected object exists, as the contract's deletion rules decide it.

An object is deleted when its own tombstone says so, or when its app is deleted, or when an
``App Delete`` newer than the object's version was ever received (it belonged to the app before
that delete). Rows are never removed; these expressions are evaluated at read time.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, or_
from sqlalchemy.sql.elements import ColumnElement

from cmdb_sync.models import App


def effective_deleted_at(child: Any, app: Any = App) -> ColumnElement[Any]:
    """When ``child`` (a versioned object owned by an app) stopped existing, or NULL if it exists.

    ``app`` is the App entity or alias joined on ``(org_id, name) == (child.org_id, child.app_name)``.
    """
    return case(
        (child.deleted_at.is_not(None), child.deleted_at),
        (and_(app.purged_at.is_not(None), child.version_at < app.purged_at), app.purged_at),
        (app.deleted_at.is_not(None), app.deleted_at),
        else_=None,
    )


def owned_by(child: Any, app: Any = App) -> ColumnElement[bool]:
    """The join condition from an app-owned object to its app."""
    return and_(app.org_id == child.org_id, app.name == child.app_name)


def visible(child: Any, app: Any = App) -> ColumnElement[bool]:
    """``effective_deleted_at(child, app) IS NULL``, written as conditions the planner can estimate
    (a CASE it cannot): with it, a filtered list walks the index in cursor order and stops at the
    page's end instead of sorting every match."""
    return and_(
        child.deleted_at.is_(None),
        app.deleted_at.is_(None),
        or_(app.purged_at.is_(None), child.version_at.is_(None), child.version_at >= app.purged_at),
    )
