"""VariableGroup events. The body names no app: the X-AppStack-App header does; none means org-level."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cmdb_sync.events import Envelope, VariableGroupAttrs, parse_attributes
from cmdb_sync.models import Variable, VariableGroup
from cmdb_sync.projections.common import Listed, Projection, apply_snapshot, ensure_app, replace_children, require_org
from cmdb_sync.status import Status

ORG_LEVEL = ""


def apply(session: Session, envelope: Envelope) -> Status:
    attrs = parse_attributes(VariableGroupAttrs, envelope.attributes)
    org_id = require_org(envelope)
    app_name = envelope.app or ORG_LEVEL
    if app_name:
        ensure_app(session, org_id, app_name)
    group_id = apply_snapshot(
        session,
        VariableGroup.__table__,
        envelope,
        {"org_id": org_id, "app_name": app_name, "name": attrs.name},
        {"display_name": attrs.display_name, "type": attrs.type},
    )
    if group_id is None:
        return Status.STALE
    replace_children(
        session,
        Variable.__table__,
        "group_id",
        group_id,
        [{"key": v.key, "value": v.value, "description": v.description} for v in attrs.vars or ()],
    )
    return Status.APPLIED


PROJECTION = Projection(
    kind="VariableGroup",
    model=VariableGroup,
    apply=apply,
    children=(Variable.__table__,),
    listed=Listed(key=lambda group: (group.app_name, group.name), tombstone=lambda group: {"name": group.name}),
)
