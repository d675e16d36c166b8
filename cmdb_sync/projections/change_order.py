"""ChangeOrder events: a deployment with its jobs (one per env), their stages and tasks.

The JSON strings inside tasks are parsed when they parse; when they do not, the task keeps no
artifacts and the event still applies: a deployment record is worth more than one field of it.
"""

from __future__ import annotations

from typing import Any

from cmdb_sync.events import ChangeOrderAttrs, Envelope, TaskAttrs, json_loads, parse_attributes
from cmdb_sync.models import ChangeOrder, ChangeOrderJob, ChangeOrderStage, ChangeOrderTask
from cmdb_sync.projections.common import CHILDREN, Children, Projection, Snapshot, owning_app


def searchable_artifacts(artifacts: dict[str, Any]) -> str:
    """What the artifact filter searches: the values, one a line, lower-cased here (Python's
    ``str.lower``, as the as-of filter compares), so that the database matches them with a plain
    LIKE. ILIKE lower-cased every job's text at every search: 5.7 ms against 1.2 ms for LIKE on
    10,000 jobs, a scan the planner chooses at that size whatever the indexes."""
    return "\n".join(str(value) for value in artifacts.values()).lower()


def parse_json_object(text: str | None) -> dict[str, Any] | None:
    """A JSON object from one of the task's embedded strings, or None when it is not one."""
    if not text:
        return None
    try:
        value = json_loads(text)
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


def snapshot(envelope: Envelope) -> Snapshot:
    attrs = parse_attributes(ChangeOrderAttrs, envelope.attributes)
    org_id, app_name = owning_app(
        envelope, attrs.app_name or envelope.app, "objectAttributes.appName or X-AppStack-App"
    )
    job_rows = []
    for job in attrs.jobs or ():
        stages = job.stages or []
        tasks_by_stage = [[task_row(t) for t in stage.tasks or ()] for stage in stages]
        artifacts = merged_artifacts(tasks_by_stage)
        stage_rows = [
            {
                "sn": stage.sn,
                "name": stage.name,
                "state": stage.state,
                "started_at": stage.started_at,
                "ended_at": stage.ended_at,
                CHILDREN: (Children(ChangeOrderTask.__table__, task_rows),),
            }
            for stage, task_rows in zip(stages, tasks_by_stage, strict=True)
        ]
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
                "artifacts_text": searchable_artifacts(artifacts),
                CHILDREN: (Children(ChangeOrderStage.__table__, stage_rows),),
            }
        )
    return Snapshot(
        values={
            "org_id": org_id,
            "sn": attrs.sn,
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
        children=(Children(ChangeOrderJob.__table__, job_rows),),
        app=(org_id, app_name),
    )


PROJECTION = Projection(
    kind="ChangeOrder",
    model=ChangeOrder,
    snapshot=snapshot,
    actions=frozenset({"StatusUpdate"}),
    children=(ChangeOrderJob.__table__, ChangeOrderStage.__table__, ChangeOrderTask.__table__),
    app_path=("appName",),
    default_action="StatusUpdate",
)
