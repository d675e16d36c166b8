"""ReleaseStageExecution events: one pipeline run of a release workflow stage."""

from __future__ import annotations

from cmdb_sync.events import Envelope, ReleaseStageExecutionAttrs, parse_attributes
from cmdb_sync.models import ReleaseStageExecution
from cmdb_sync.projections.common import Projection, Snapshot, require_org


def snapshot(envelope: Envelope) -> Snapshot:
    attrs = parse_attributes(ReleaseStageExecutionAttrs, envelope.attributes)
    org_id = require_org(envelope)
    context = attrs.context
    return Snapshot(
        values={
            "org_id": org_id,
            "release_workflow_sn": attrs.release_workflow_sn,
            "release_stage_sn": attrs.release_stage_sn,
            "engine_instance_id": attrs.engine_instance_id,
            "app_name": envelope.app,
            "state": attrs.state,
            "trigger_mode": context.trigger_mode if context else None,
            "started_at": context.start_time if context else None,
            "ended_at": context.end_time if context else None,
        },
        app=(org_id, envelope.app) if envelope.app else None,
    )


PROJECTION = Projection(
    kind="ReleaseStageExecution",
    model=ReleaseStageExecution,
    snapshot=snapshot,
    actions=frozenset({"StatusUpdate"}),
    default_action="StatusUpdate",
)
