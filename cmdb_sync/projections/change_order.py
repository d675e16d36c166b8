"""ChangeOrder events: a deployment with its jobs (one per env), their stages and tasks.

The JSON strings inside tasks are parsed when they parse; when they do not, the task keeps no
artifacts and the event still applies: a deployment record is worth more than one field of it.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from cmdb_sync.events import ChangeOrderAttrs, Envelope, TaskAttrs, parse_attributes
from cmdb_sync.models import ChangeOrder, ChangeOrderJob, ChangeOrderStage, ChangeOrderTask
from cmdb_sync.projections.common import Projection, apply_snapshot, owning_app, replace_children
from cmdb_sync.status import Status


def parse_json_object(text: str | None) -> dict[str, Any] | None:
    """A JSON object from one of the task's embedded strings, or None when it is not one."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def task_row(task: TaskAttrs) -> dict[str, Any]:
    context = parse_json_object(task.context_content) or {}
    result = parse_json_object(task.engine_task_result_content) or {}
    return {
        "sn": task.sn,
        "name": task.name,
        "locator": task.locator,
        "state": task.state,
        "started_at": task.started_at,
        "ended_at": task.ended_at,
        "artifacts": _mapping(context.get("artifacts")),
        "error_messages": _mapping(result.get("taskErrorMessages")),
        "strategy": parse_json_object(task.strategy_content),
        "deliveries": task.deliveries,
        "spec": task.spec,
    }


def merged_artifacts(task_rows_by_stage: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """A job's artifacts: its tasks', in stage and task order, a later task's value winning."""
    merged: dict[str, Any] = {}
    for task_rows in task_rows_by_stage:
        for row in task_rows:
            merged.update(row["artifacts"])
    return merged


def apply(session: Session, envelope: Envelope) -> Status:
    attrs = parse_attributes(ChangeOrderAttrs, envelope.attributes)
    org_id, app_name = owning_app(
        session, envelope, attrs.app_name or envelope.app, "objectAttributes.appName or X-AppStack-App"
    )
    order_id = apply_snapshot(
        session,
        ChangeOrder.__table__,
        envelope,
        {"org_id": org_id, "sn": attrs.sn},
        {
            "app_name": app_name,
            "name": attrs.name,
            "type": attrs.type,
            "version": attrs.version,
            "tag": attrs.tag,
            "state": attrs.state,
            "source_type": attrs.source_type,
            "source_sn": attrs.source_sn,
            "started_at": attrs.started_at,
            "creator_id": attrs.creator,
            "created_at": attrs.gmt_create,
        },
    )
    if order_id is None:
        return Status.STALE
    jobs = attrs.jobs or []
    tasks_by_job = [[[task_row(t) for t in stage.tasks or ()] for stage in job.stages or ()] for job in jobs]
    job_rows = []
    for job, task_rows_by_stage in zip(jobs, tasks_by_job, strict=True):
        artifacts = merged_artifacts(task_rows_by_stage)
        job_rows.append(
            {
                "org_id": org_id,
                "app_name": app_name,
                "env_name": job.env_name,
                "sn": job.sn,
                "name": job.name,
                "state": job.state,
                "started_at": job.started_at,
                "ended_at": job.ended_at,
                "artifacts": artifacts,
                "artifacts_text": "\n".join(str(v) for v in artifacts.values()),
            }
        )
    job_ids = replace_children(session, ChangeOrderJob.__table__, "change_order_id", order_id, job_rows)
    for job, job_id, task_rows_by_stage in zip(jobs, job_ids, tasks_by_job, strict=True):
        stages = job.stages or []
        stage_ids = replace_children(
            session,
            ChangeOrderStage.__table__,
            "job_id",
            job_id,
            [
                {"sn": s.sn, "name": s.name, "state": s.state, "started_at": s.started_at, "ended_at": s.ended_at}
                for s in stages
            ],
        )
        for stage_id, task_rows in zip(stage_ids, task_rows_by_stage, strict=True):
            replace_children(session, ChangeOrderTask.__table__, "stage_id", stage_id, task_rows)
    return Status.APPLIED


PROJECTION = Projection(
    kind="ChangeOrder",
    model=ChangeOrder,
    actions=frozenset({"StatusUpdate"}),
    apply=apply,
    children=(ChangeOrderJob.__table__, ChangeOrderStage.__table__, ChangeOrderTask.__table__),
    app_path=("appName",),
    default_action="StatusUpdate",
)
