"""The views the read queries answer with: snake_case, ISO-8601 UTC timestamps, exactly the contract's fields."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, PlainSerializer

from cmdb_sync.times import iso_utc


def _iso_utc_or_null(value: datetime | None) -> str | None:
    return None if value is None else iso_utc(value)


Timestamp = Annotated[datetime | None, PlainSerializer(_iso_utc_or_null, return_type=str | None)]

T = TypeVar("T")


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(Schema, Generic[T]):
    """A page of a list; pass ``next_cursor`` back as ``cursor`` for the next one (null: no more)."""

    items: list[T]
    next_cursor: str | None


class HistoryPage(Page[T], Generic[T]):
    """A page of versions. ``archived_before``: deliveries received before this moment were
    archived (``cmdb-sync journal archive``), and their versions are gone from the history but
    for each object's last one; null when nothing was archived."""

    archived_before: Timestamp = None


class Versioned(Schema):
    org_id: str
    updated_at: Timestamp
    deleted_at: Timestamp


V = TypeVar("V", bound=Versioned)
VERSION_FIELDS = frozenset({"org_id", "updated_at", "deleted_at"})


def versioned_out(schema: type[V], row: Any, **overrides: Any) -> V:
    """A response model from a versioned row: ``updated_at`` is its version time, the other fields
    are read by name from the row unless given in ``overrides`` (``deleted_at`` included)."""
    fields = {
        name: getattr(row, name) for name in schema.model_fields if name not in VERSION_FIELDS and name not in overrides
    }
    values = {"org_id": row.org_id, "updated_at": row.version_at, "deleted_at": row.deleted_at}
    return schema.model_validate({**values, **fields, **overrides})


class AppOut(Versioned):
    name: str
    description: str | None
    type: str | None
    creator_id: str | None
    created_at: Timestamp


class LabelOut(Schema):
    namespace: str | None
    name: str
    value: str | None
    display_name: str | None
    display_value: str | None


class ProfileOut(Schema):
    name: str
    display_name: str | None
    type: str | None


class DeploymentOut(Schema):
    """What runs in an env: its newest successful change-order job."""

    change_order_sn: str
    version: str | None
    artifacts: dict[str, Any]
    ended_at: Timestamp


class EnvOut(Versioned):
    app_name: str
    name: str
    display_name: str | None
    description: str | None
    lock_by: str | None
    resource_pool_name: str | None
    deploy_group_name: str | None
    replicas_management: str | None
    rollout_strategy: list[Any] | None
    labels: list[LabelOut]
    profiles: list[ProfileOut]
    current_deployment: DeploymentOut | None


class VariableOut(Schema):
    key: str
    value: str | None
    description: str | None
    masked: bool


class VariableGroupOut(Versioned):
    app_name: str
    name: str
    display_name: str | None
    vars: list[VariableOut]


class RevisionOut(Schema):
    sha: str | None
    message: str | None
    author: str | None
    commit_time: Timestamp


class PlaceholderOut(Schema):
    name: str
    description: str | None
    type: str | None
    value: Any
    overridable: bool | None
    rule: Any
    value_source: str | None
    predefined: bool | None
    rs_type: str | None


class ComponentOut(Schema):
    name: str
    kind: str | None
    description: str | None
    content: str | None
    priority: int | None
    type: str | None


class OrchestrationOut(Versioned):
    app_name: str
    sn: str
    name: str | None
    storage_type: str | None
    format: str | None
    type: str | None
    label_policy: str | None
    suitable_resource_types: list[str] | None
    revision: RevisionOut | None
    labels: list[LabelOut]
    placeholders: list[PlaceholderOut]
    components: list[ComponentOut]


class EventOut(Schema):
    id: str
    kind: str
    action: str | None
    app: str | None
    org_id: str | None
    actor_id: str | None
    time: Timestamp
    received_at: Timestamp
    status: str
    error: str | None


class EventDetailOut(EventOut):
    headers: dict[str, str]
    body: Any


class TaskOut(Schema):
    sn: str | None
    name: str | None
    locator: str | None
    state: str | None
    artifacts: dict[str, Any]
    error_messages: dict[str, Any]


class TaskDetailOut(TaskOut):
    """A task with its rendered manifests: served on the single change-order route only."""

    deliveries: str | None
    spec: str | None


class StageOut(Schema):
    sn: str | None
    name: str | None
    state: str | None
    tasks: list[TaskOut]


class StageDetailOut(StageOut):
    tasks: list[TaskDetailOut]  # type: ignore[assignment]


class JobOut(Schema):
    sn: str | None
    env_name: str | None
    state: str | None
    started_at: Timestamp
    ended_at: Timestamp
    stages: list[StageOut]


class JobDetailOut(JobOut):
    stages: list[StageDetailOut]  # type: ignore[assignment]


class ChangeOrderOut(Versioned):
    app_name: str
    sn: str
    name: str | None
    type: str | None
    version: str | None
    tag: str | None
    state: str | None
    source_type: str | None
    source_sn: str | None
    started_at: Timestamp
    jobs: list[JobOut]


class ChangeOrderDetailOut(ChangeOrderOut):
    jobs: list[JobDetailOut]  # type: ignore[assignment]


class ChangeRequestOut(Versioned):
    app_name: str
    sn: str
    name: str | None
    state: str | None
    type: str | None
    branch: str | None
    origin_branch: str | None
    origin_branch_revision: str | None
    owner_id: str | None
    repo_url: str | None


class ReleaseStageExecutionOut(Versioned):
    app_name: str | None
    release_workflow_sn: str
    release_stage_sn: str
    engine_instance_id: str
    state: str | None
    trigger_mode: str | None
    started_at: Timestamp
    ended_at: Timestamp
