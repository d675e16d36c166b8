"""AppOrchestration events: revision, label bindings, placeholders and manifest components."""

from __future__ import annotations

from cmdb_sync.events import Envelope, OrchestrationAttrs, parse_attributes
from cmdb_sync.models import Component, Orchestration, OrchestrationLabel, Placeholder
from cmdb_sync.projections.common import Children, Listed, Projection, Snapshot, label_rows, owning_app


def snapshot(envelope: Envelope) -> Snapshot:
    attrs = parse_attributes(OrchestrationAttrs, envelope.attributes)
    app_named = attrs.app.name if attrs.app else envelope.app
    org_id, app_name = owning_app(envelope, app_named, "objectAttributes.app.name or X-AppStack-App")
    revision = attrs.revision
    placeholders = [
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
    ]
    components = [
        {
            "name": c.name,
            "kind": c.kind,
            "description": c.description,
            "content": c.content,
            "priority": c.priority,
            "type": c.type,
        }
        for c in attrs.component_list or ()
    ]
    return Snapshot(
        values={
            "org_id": org_id,
            "sn": attrs.sn,
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
        children=(
            Children(OrchestrationLabel.__table__, label_rows(attrs.label_list)),
            Children(Placeholder.__table__, placeholders),
            Children(Component.__table__, components),
        ),
        app=(org_id, app_name),
    )


PROJECTION = Projection(
    kind="AppOrchestration",
    model=Orchestration,
    snapshot=snapshot,
    children=(OrchestrationLabel.__table__, Placeholder.__table__, Component.__table__),
    app_path=("app", "name"),
    listed=Listed(key=lambda o: (o.sn,), tombstone=lambda o: {"sn": o.sn, "app": {"name": o.app_name}}),
)
