"""ReleaseStageExecution events: one pipeline run of a release workflow stage."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cmdb_sync.events import Envelope, ReleaseStageExecutionAttrs, parse_attributes
from cmdb_sync.models import ReleaseStageExecution
from cmdb_sync.projections.common import Projection, applied_if, apply_snapshot, ensure_app, require_org
from cmdb_sync.status import Status


def apply(session: Session, envelope: Envelope) -> Status:
    attrs = parse_attributes(ReleaseStageExecutionAttrs, envelope.attributes)
    org_id = require_org(envelope)
    if envelope.app:
        ensure_app(session, org_id, envelope.app)
    context = attrs.context
    row_id = apply_snapshot(
        session,
        ReleaseStageExecution.__table__,
        envelope,
        {
            "org_id": org_id,
            "release_workflow_sn": attrs.release_workflow_sn,
            "release_stage_sn": attrs.release_stage_sn,
            "engine_instance_id": attrs.engine_instance_id,
        },
        {
            "app_name": envelope.app,
            "state": attrs.state,
            "trigger_mode": context.trigger_mode if context else None,
            "started_at": context.start_time if context else None,
            "ended_at": context.end_time if context else None,
        },
    )
    return applied_if(row_id)


PROJECTION = Projection(
    kind="ReleaseStageExecution",
    model=ReleaseStageExecution,
    actions=frozenset({"StatusUpdate"}),
    apply=apply,
    default_action="StatusUpdate",
)
