"""App events: the app row itself, and the delete time that hides what the app owned."""

from __future__ import annotations

from cmdb_sync.events import AppAttrs, Envelope, parse_attributes
from cmdb_sync.models import App
from cmdb_sync.projections.common import DELETE, Listed, Projection, Snapshot, require_org


def snapshot(envelope: Envelope) -> Snapshot:
    attrs = parse_attributes(AppAttrs, envelope.attributes)
    org_id = require_org(envelope)
    is_delete = envelope.action == DELETE
    return Snapshot(
        values={
            "org_id": org_id,
            "name": attrs.name,
            "description": attrs.description,
            "type": attrs.type,
            "creator_id": attrs.creator_id,
            "created_at": attrs.gmt_create,
        },
        insert_only={"purged_at": envelope.time if is_delete else None},
        purges=envelope.time if is_delete else None,
    )


PROJECTION = Projection(
    kind="App",
    model=App,
    snapshot=snapshot,
    app_path=("name",),
    listed=Listed(key=lambda app: (app.name,), tombstone=lambda app: {"name": app.name}),
)
