"""The registry of projected kinds: adding a kind is one module and one line here."""

from __future__ import annotations

from cmdb_sync.projections import (
    app,
    change_order,
    change_request,
    env,
    orchestration,
    release_stage_execution,
    variable_group,
)
from cmdb_sync.projections.common import Projection

REGISTRY: dict[str, Projection] = {
    "App": app.PROJECTION,
    "Env": env.PROJECTION,
    "VariableGroup": variable_group.PROJECTION,
    "AppOrchestration": orchestration.PROJECTION,
    "ChangeOrder": change_order.PROJECTION,
    "ChangeRequest": change_request.PROJECTION,
    "ReleaseStageExecution": release_stage_execution.PROJECTION,
}
