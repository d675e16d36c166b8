"""App events: the app row itself, and the delete time that hides what the app owned."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cmdb_sync.events import AppAttrs, Envelope, parse_attributes
from cmdb_sync.models import App
from cmdb_sync.projections.common import (
    APPLIED,
    SNAPSHOT_ACTIONS,
    STALE,
    Projection,
    apply_snapshot,
    record_app_delete,
    require_org,
)


def apply(session: Session, envelope: Envelope) -> str:
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
    return APPLIED if row_id is not None else STALE


PROJECTION = Projection(actions=SNAPSHOT_ACTIONS, apply=apply)
