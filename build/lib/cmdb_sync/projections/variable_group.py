"""VariableGroup events. The body names no app: the X-AppStack-App header does; none means org-level."""

from __future__ import annotations

from cmdb_sync.events import Envelope, VariableGroupAttrs, parse_attributes
from cmdb_sync.models import Variable, VariableGroup
from cmdb_sync.projections.common import Children, Listed, Projection, Snapshot, require_org

ORG_LEVEL = ""


def snapshot(envelope: Envelope) -> Snapshot:
    attrs = parse_attributes(VariableGroupAttrs, envelope.attributes)
    org_id = require_org(envelope)
    app_name = envelope.app or ORG_LEVEL
    variables = [{"key": v.key, "value": v.value, "description": v.description} for v in attrs.vars or ()]
    return Snapshot(
        values={
            "org_id": org_id,
            "app_name": app_name,
            "name": attrs.name,
            "display_name": attrs.display_name,
            "type": attrs.type,
        },
        children=(Children(Variable.__table__, variables),),
        app=(org_id, app_name) if app_name else None,
    )


PROJECTION = Projection(
    kind="VariableGroup",
    model=VariableGroup,
    snapshot=snapshot,
    children=(Variable.__table__,),
    listed=Listed(key=lambda group: (group.app_name, group.name), tombstone=lambda group: {"name": group.name}),
)
