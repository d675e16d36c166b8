"""AppOrchestration events: revision, label bindings, placeholders and manifest components."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cmdb_sync.events import Envelope, OrchestrationAttrs, parse_attributes
from cmdb_sync.models import Component, Orchestration, OrchestrationLabel, Placeholder
from cmdb_sync.projections.common import Listed, Projection, apply_snapshot, label_rows, owning_app, replace_children
from cmdb_sync.status import Status


def apply(session: Session, envelope: Envelope) -> Status:
    attrs = parse_attributes(OrchestrationAttrs, envelope.attributes)
    app_named = attrs.app.name if attrs.app else envelope.app
    org_id, app_name = owning_app(session, envelope, app_named, "objectAttributes.app.name or X-AppStack-App")
    revision = attrs.revision
    orchestration_id = apply_snapshot(
        session,
        Orchestration.__table__,
        envelope,
        {"org_id": org_id, "sn": attrs.sn},
        {
            "app_name": app_name,
            "name": attrs.name,
            "storage_type": attrs.storage_type,
            "format": attrs.format,
            "type": attrs.type,
            "label_policy": attrs.label_policy,
            "suitable_resource_types": attrs.suitable_resource_types,
            "revision_sha": revision.sha if revision else None,
            "revision_message": revision.message if revision else None,
            "revision_author": revision.author if revision else None,
            "revision_commit_time": revision.commit_time if revision else None,
            "creator_id": attrs.creator_id,
            "created_at": attrs.gmt_create,
            "modifier_id": attrs.modifier_id,
            "modified_at": attrs.gmt_modified,
        },
    )
    if orchestration_id is None:
        return Status.STALE
    replace_children(
        session, OrchestrationLabel.__table__, "orchestration_id", orchestration_id, label_rows(attrs.label_list)
    )
    replace_children(
        session,
        Placeholder.__table__,
        "orchestration_id",
        orchestration_id,
        [
            {
                "name": p.name,
                "description": p.description,
                "type": p.type,
                "value": p.value,
                "overridable": p.overridable,
                "rule": p.rule,
                "value_source": p.value_source,
                "predefined": p.predefined,
                "rs_type": p.rs_type,
            }
            for p in attrs.placeholder_list or ()
        ],
    )
    replace_children(
        session,
        Component.__table__,
        "orchestration_id",
        orchestration_id,
        [
            {
                "name": c.name,
                "kind": c.kind,
                "description": c.description,
                "content": c.content,
                "priority": c.priority,
                "type": c.type,
            }
            for c in attrs.component_list or ()
        ],
    )
    return Status.APPLIED


PROJECTION = Projection(
    kind="AppOrchestration",
    model=Orchestration,
    apply=apply,
    children=(OrchestrationLabel.__table__, Placeholder.__table__, Component.__table__),
    app_path=("app", "name"),
    listed=Listed(key=lambda o: (o.sn,), tombstone=lambda o: {"sn": o.sn, "app": {"name": o.app_name}}),
)
