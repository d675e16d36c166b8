"""App events: the app row itself, and the delete time that hides what the app owned."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cmdb_sync.events import AppAttrs, Envelope, parse_attributes
from cmdb_sync.models import App
from cmdb_sync.projections.common import Listed, Projection, applied_if, apply_snapshot, record_app_delete, require_org
from cmdb_sync.status import Status


def apply(session: Session, envelope: Envelope) -> Status:
    attrs = parse_attributes(AppAttrs, envelope.attributes)
    org_id = require_org(envelope)
    is_delete = envelope.action == "Delete"
    row_id = apply_snapshot(
        session,
        App.__table__,
        envelope,
        {"org_id": org_id, "name": attrs.name},
        {
            "description": attrs.description,
            "type": attrs.type,
            "creator_id": attrs.creator_id,
            "created_at": attrs.gmt_create,
        },
        insert_only={"purged_at": envelope.time} if is_delete else None,
    )
    if is_delete:
        record_app_delete(session, org_id, attrs.name, envelope.time)
    return applied_if(row_id)


PROJECTION = Projection(
    kind="App",
    model=App,
    apply=apply,
    app_path=("name",),
    listed=Listed(key=lambda app: (app.name,), tombstone=lambda app: {"name": app.name}),
)
