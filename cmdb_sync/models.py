"""The relational model: the event journal and the projections built from it.

Every projected object carries its *version*, the ``(version_at, version_id)`` of the event that
last set it; the version guard in ``projections.common`` compares against it inside the upsert.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both databases.

    PostgreSQL keeps ``timestamptz``. SQLite has no time type: values are normalised to UTC and
    stored naive in SQLAlchemy's fixed-width text form, so comparisons and ``ORDER BY`` in SQL stay
    chronological, and they come back aware.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    @property
    def python_type(self) -> type[datetime]:
        return datetime

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            msg = "naive datetime given to a UTC column"
            raise ValueError(msg)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON, Any: JSON}


# --- a child row and its parent ------------------------------------------------------------------
#
# A child row (an env's label, a change order's job, a job's stage...) holds its parent's id, and
# is written only by the batch projector, which takes that id from the parent's own upsert in the
# same transaction and deletes the rows below a parent before it replaces them
# (``bulk.replace_children``, ``bulk.delete_children``). The column is not a foreign key: on
# PostgreSQL each row a key checks costs a query of its own, run by a trigger (``RI_FKey_check``,
# SPI, a ``FOR KEY SHARE`` lock on the parent): 3.5 s of PostgreSQL's 22 s over an import of
# 200,000 events (940,000 child rows), and 9% of the import's time in alternated runs (migration
# 0010). What the keys' cascade did, the projector does set-based.


def parent_id(parent: str, *, index: bool = True) -> Mapped[int]:
    """The id of the row of table ``parent`` that this row belongs to."""
    return mapped_column(Integer, index=index, info={"parent": parent})


@cache
def parent_of(child: Table) -> tuple[str, str] | None:
    """``(column, parent table)`` of a child table: the column holding the id of its parent row,
    and the name of the parent's table; None for a table that is no one's child. A row has one
    parent: a table declaring two is a mistake in the models."""
    links = [(column.name, column.info["parent"]) for column in child.columns if "parent" in column.info]
    if len(links) > 1:
        msg = f"{child.name} declares {len(links)} parent columns; a child row has one parent"
        raise ValueError(msg)
    return links[0] if links else None


def parent_column(child: Table, parent: Table) -> str | None:
    """The column of ``child`` holding the id of its ``parent`` row; None if ``parent`` is not its parent."""
    link = parent_of(child)
    return link[0] if link is not None and link[1] == parent.name else None


def children(parent: str, child: str, column: str) -> Any:
    """The child rows of a row, in their position's order, read only when asked for (``selectinload``)."""
    return relationship(
        order_by=f"{child}.position", lazy="raise", primaryjoin=f"{parent}.id == foreign({child}.{column})"
    )


class Event(Base):
    """One delivery, stored verbatim before it is acknowledged: the system of record."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    kind: Mapped[str] = mapped_column(String)
    action: Mapped[str | None] = mapped_column(String)
    app: Mapped[str | None] = mapped_column(String)
    org_id: Mapped[str | None] = mapped_column(String)
    actor_id: Mapped[str | None] = mapped_column(String)
    time: Mapped[datetime | None] = mapped_column(comment="event time (body.time), UTC, ms precision")
    received_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), comment="applied, stale, unsupported or failed")
    error: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[dict[str, Any]] = mapped_column(comment="request headers, token redacted")
    body: Mapped[str] = mapped_column(Text, comment="raw request body, verbatim")

    @property
    def parsed_body(self) -> Any:
        return stored_json(self.body)

    __table_args__ = (
        Index(None, "time", "id"),
        Index(None, "received_at", "id"),
        Index(None, "status", "received_at", "id"),
        Index(None, "kind", "received_at", "id"),
        Index(None, "app", "received_at", "id"),
    )


class EventId(Base):
    """Every delivery id the journal ever held, archived ones included: what makes a delivery sent
    again a duplicate. On PostgreSQL the journal is partitioned by received month and its key must
    hold the month, so this table's key is the one that says an id was seen (``ON CONFLICT``)."""

    __tablename__ = "event_ids"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(comment="when it was first received (its journal month)")


class JournalArchive(Base):
    """One ``cmdb-sync journal archive``: the deliveries received before ``before`` were written to
    ``file`` and removed from the journal, but for the last snapshot of each object (and its last
    tombstone), kept so that the inventory and as-of reads from ``horizon`` on stay whole."""

    __tablename__ = "journal_archives"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    before: Mapped[datetime] = mapped_column(comment="deliveries received before this moment were archived")
    horizon: Mapped[datetime | None] = mapped_column(
        comment="the newest event time archived: as-of reads before it are refused"
    )
    file: Mapped[str] = mapped_column(Text, comment="where the archive was written")
    sha256: Mapped[str] = mapped_column(String(64))
    archived: Mapped[int] = mapped_column(Integer, comment="deliveries written to the file")
    kept: Mapped[int] = mapped_column(Integer, comment="of those, kept in the journal as last snapshots")
    archived_at: Mapped[datetime]
    finished_at: Mapped[datetime | None] = mapped_column(
        comment="when the journal was trimmed; null while an archive is under way"
    )


class Version(Base):
    """One snapshot received for an object, applied or stale: its history, and what as-of reads
    walk. The snapshot itself is the journaled event's body (``event_id``); ``name`` is the object's
    key within its app (an app's name for an App; the identity's remaining parts joined by ``/``
    where there are several)."""

    __tablename__ = "versions"

    event_id: Mapped[str] = mapped_column(String, primary_key=True, comment="the journaled event (events.id)")
    kind: Mapped[str] = mapped_column(String)
    org_id: Mapped[str] = mapped_column(String)
    app_name: Mapped[str] = mapped_column(String, comment="the owning app; '' for none")
    name: Mapped[str] = mapped_column(String)
    time: Mapped[datetime]
    deleted: Mapped[bool] = mapped_column(Boolean, comment="a Delete: the object's tombstone")

    __table_args__ = (
        Index(None, "kind", "app_name", "name", "org_id", "time", "event_id"),
        Index(None, "time", "event_id"),
    )


def stored_json(body: str) -> Any:
    """A journaled body as JSON. Every body was JSON when it was received; anything else is kept
    verbatim rather than lost."""
    try:
        return json.loads(body)
    except ValueError:
        return body


class Versioned:
    """Columns every projected object has: org, version, tombstone."""

    org_id: Mapped[str] = mapped_column(String)
    version_at: Mapped[datetime | None] = mapped_column(comment="time of the event that last set this row")
    version_id: Mapped[str | None] = mapped_column(String, comment="id of the event that last set this row")
    deleted_at: Mapped[datetime | None]


class App(Versioned, Base):
    __tablename__ = "apps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String)
    description: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str | None] = mapped_column(String)
    creator_id: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime | None]
    purged_at: Mapped[datetime | None] = mapped_column(
        comment="time of the newest App Delete ever received, stale ones included: children "
        "versioned before it count as deleted"
    )

    __table_args__ = (UniqueConstraint("org_id", "name"), Index(None, "name", "org_id"))


class Env(Versioned, Base):
    __tablename__ = "envs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_name: Mapped[str] = mapped_column(String)
    name: Mapped[str] = mapped_column(String)
    display_name: Mapped[str | None] = mapped_column(String)
    description: Mapped[str | None] = mapped_column(Text)
    creator_id: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime | None]
    lock_by: Mapped[str | None] = mapped_column(String)
    resource_pool_name: Mapped[str | None] = mapped_column(String)
    deploy_group_name: Mapped[str | None] = mapped_column(String)
    replicas_management: Mapped[str | None] = mapped_column(String)
    rollout_strategy: Mapped[Any | None] = mapped_column(JSON(none_as_null=True))

    labels: Mapped[list[EnvLabel]] = children("Env", "EnvLabel", "env_id")
    profiles: Mapped[list[EnvProfile]] = children("Env", "EnvProfile", "env_id")

    __table_args__ = (UniqueConstraint("org_id", "app_name", "name"), Index(None, "app_name", "name", "org_id"))


class LabelColumns:
    position: Mapped[int]
    namespace: Mapped[str | None] = mapped_column(String)
    name: Mapped[str] = mapped_column(String)
    value: Mapped[str | None] = mapped_column(String)
    display_name: Mapped[str | None] = mapped_column(String)
    display_value: Mapped[str | None] = mapped_column(String)


class EnvLabel(LabelColumns, Base):
    __tablename__ = "env_labels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    env_id: Mapped[int] = parent_id("envs", index=False)

    # (env_id, name, value) answers a label filter's EXISTS per env with one index probe
    __table_args__ = (Index(None, "name", "value"), Index(None, "env_id", "name", "value"))


class EnvProfile(Base):
    __tablename__ = "env_profiles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    env_id: Mapped[int] = parent_id("envs")
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String)
    display_name: Mapped[str | None] = mapped_column(String)
    type: Mapped[str | None] = mapped_column(String)


class VariableGroup(Versioned, Base):
    __tablename__ = "variable_groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_name: Mapped[str] = mapped_column(String, comment="X-AppStack-App of the event; '' for an org-level group")
    name: Mapped[str] = mapped_column(String)
    display_name: Mapped[str | None] = mapped_column(String)
    type: Mapped[str | None] = mapped_column(String)

    variables: Mapped[list[Variable]] = children("VariableGroup", "Variable", "group_id")

    __table_args__ = (UniqueConstraint("org_id", "app_name", "name"),)


class Variable(Base):
    __tablename__ = "variables"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = parent_id("variable_groups")
    position: Mapped[int]
    key: Mapped[str] = mapped_column(String)
    value: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)


class Orchestration(Versioned, Base):
    __tablename__ = "orchestrations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sn: Mapped[str] = mapped_column(String)
    app_name: Mapped[str] = mapped_column(String)
    name: Mapped[str | None] = mapped_column(String)
    storage_type: Mapped[str | None] = mapped_column(String)
    format: Mapped[str | None] = mapped_column(String)
    type: Mapped[str | None] = mapped_column(String)
    label_policy: Mapped[str | None] = mapped_column(String)
    suitable_resource_types: Mapped[Any | None] = mapped_column(JSON(none_as_null=True))
    revision_sha: Mapped[str | None] = mapped_column(String)
    revision_message: Mapped[str | None] = mapped_column(Text)
    revision_author: Mapped[str | None] = mapped_column(String)
    revision_commit_time: Mapped[datetime | None]
    creator_id: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime | None]
    modifier_id: Mapped[str | None] = mapped_column(String)
    modified_at: Mapped[datetime | None]

    labels: Mapped[list[OrchestrationLabel]] = children("Orchestration", "OrchestrationLabel", "orchestration_id")
    placeholders: Mapped[list[Placeholder]] = children("Orchestration", "Placeholder", "orchestration_id")
    components: Mapped[list[Component]] = children("Orchestration", "Component", "orchestration_id")

    __table_args__ = (UniqueConstraint("org_id", "sn"), Index(None, "org_id", "app_name", "sn"))


class OrchestrationLabel(LabelColumns, Base):
    __tablename__ = "orchestration_labels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    orchestration_id: Mapped[int] = parent_id("orchestrations")


class Placeholder(Base):
    __tablename__ = "placeholders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    orchestration_id: Mapped[int] = parent_id("orchestrations")
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String)
    description: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str | None] = mapped_column(String)
    value: Mapped[Any | None] = mapped_column(JSON(none_as_null=True), comment="as sent: usually a string")
    overridable: Mapped[bool | None] = mapped_column(Boolean)
    rule: Mapped[Any | None] = mapped_column(JSON(none_as_null=True))
    value_source: Mapped[str | None] = mapped_column(String)
    predefined: Mapped[bool | None] = mapped_column(Boolean)
    rs_type: Mapped[str | None] = mapped_column(String)


class Component(Base):
    __tablename__ = "components"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    orchestration_id: Mapped[int] = parent_id("orchestrations")
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String)
    kind: Mapped[str | None] = mapped_column(String)
    description: Mapped[str | None] = mapped_column(Text)
    content: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[int | None]
    type: Mapped[str | None] = mapped_column(String)


class ChangeOrder(Versioned, Base):
    """A deployment (部署单): history, so an app's deletion does not hide it."""

    __tablename__ = "change_orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sn: Mapped[str] = mapped_column(String)
    app_name: Mapped[str] = mapped_column(String)
    name: Mapped[str | None] = mapped_column(String)
    type: Mapped[str | None] = mapped_column(String)
    version: Mapped[str | None] = mapped_column(String)
    tag: Mapped[str | None] = mapped_column(String)
    state: Mapped[str | None] = mapped_column(String)
    source_type: Mapped[str | None] = mapped_column(String)
    source_sn: Mapped[str | None] = mapped_column(String)
    started_at: Mapped[datetime | None]
    creator_id: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime | None]

    jobs: Mapped[list[ChangeOrderJob]] = children("ChangeOrder", "ChangeOrderJob", "change_order_id")

    __table_args__ = (UniqueConstraint("org_id", "sn"), Index(None, "org_id", "app_name", "started_at", "id"))


class ChangeOrderJob(Base):
    """One target env of a change order; org and app are copied here so the current deployment is one index away."""

    __tablename__ = "change_order_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    change_order_id: Mapped[int] = parent_id("change_orders")
    position: Mapped[int]
    org_id: Mapped[str] = mapped_column(String)
    app_name: Mapped[str] = mapped_column(String)
    env_name: Mapped[str | None] = mapped_column(String)
    sn: Mapped[str | None] = mapped_column(String)
    name: Mapped[str | None] = mapped_column(String)
    state: Mapped[str | None] = mapped_column(String)
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    artifacts: Mapped[dict[str, Any]] = mapped_column(comment="the artifacts of the job's tasks, merged in order")
    artifacts_text: Mapped[str] = mapped_column(
        Text, comment="artifact values, one a line: what the artifact filter searches"
    )

    stages: Mapped[list[ChangeOrderStage]] = children("ChangeOrderJob", "ChangeOrderStage", "job_id")

    __table_args__ = (Index(None, "org_id", "app_name", "env_name", "state", "ended_at"),)


class ChangeOrderStage(Base):
    __tablename__ = "change_order_stages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = parent_id("change_order_jobs")
    position: Mapped[int]
    sn: Mapped[str | None] = mapped_column(String)
    name: Mapped[str | None] = mapped_column(String)
    state: Mapped[str | None] = mapped_column(String)
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]

    tasks: Mapped[list[ChangeOrderTask]] = children("ChangeOrderStage", "ChangeOrderTask", "stage_id")


class ChangeOrderTask(Base):
    __tablename__ = "change_order_tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stage_id: Mapped[int] = parent_id("change_order_stages")
    position: Mapped[int]
    sn: Mapped[str | None] = mapped_column(String)
    name: Mapped[str | None] = mapped_column(String)
    locator: Mapped[str | None] = mapped_column(String)
    state: Mapped[str | None] = mapped_column(String)
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    artifacts: Mapped[dict[str, Any]] = mapped_column(
        comment="contextContent.artifacts, parsed ({} when absent or unparseable)"
    )
    error_messages: Mapped[dict[str, Any]] = mapped_column(comment="engineTaskResultContent.taskErrorMessages, parsed")
    strategy: Mapped[Any | None] = mapped_column(JSON(none_as_null=True), comment="strategyContent, parsed")
    deliveries: Mapped[str | None] = mapped_column(Text, comment="rendered manifests, as sent")
    spec: Mapped[str | None] = mapped_column(Text, comment="rendered manifests with AppStack labels, as sent")


class ChangeRequest(Versioned, Base):
    """A change (变更): a feature branch moving through a release workflow."""

    __tablename__ = "change_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sn: Mapped[str] = mapped_column(String)
    app_name: Mapped[str] = mapped_column(String)
    name: Mapped[str | None] = mapped_column(String)
    state: Mapped[str | None] = mapped_column(String)
    type: Mapped[str | None] = mapped_column(String)
    branch: Mapped[str | None] = mapped_column(String)
    origin_branch: Mapped[str | None] = mapped_column(String)
    origin_branch_revision: Mapped[str | None] = mapped_column(String)
    owner_id: Mapped[str | None] = mapped_column(String)
    repo_url: Mapped[str | None] = mapped_column(String)
    creator_id: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("org_id", "sn"), Index(None, "org_id", "app_name", "sn"))


class ReleaseStageExecution(Versioned, Base):
    """One pipeline run of a release workflow stage (研发阶段)."""

    __tablename__ = "release_stage_executions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    release_workflow_sn: Mapped[str] = mapped_column(String)
    release_stage_sn: Mapped[str] = mapped_column(String)
    engine_instance_id: Mapped[str] = mapped_column(String)
    app_name: Mapped[str | None] = mapped_column(String, comment="X-AppStack-App of the event")
    state: Mapped[str | None] = mapped_column(String)
    trigger_mode: Mapped[str | None] = mapped_column(String)
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("org_id", "release_workflow_sn", "release_stage_sn", "engine_instance_id"),
        Index(None, "release_workflow_sn", "release_stage_sn", "id"),
    )


class RebuildRun(Base):
    """One ``cmdb-sync replay --rebuild``: where it stands, written in the same transaction as each
    batch it replays, so a rebuild that stopped continues where it stopped."""

    __tablename__ = "rebuild_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    untimed_after: Mapped[str | None] = mapped_column(String, comment="the last event without a time replayed")
    timed_after_time: Mapped[datetime | None] = mapped_column(comment="the last timed event replayed: its time")
    timed_after_id: Mapped[str | None] = mapped_column(String, comment="... and its id")
    done: Mapped[int] = mapped_column(Integer, comment="events replayed so far")


class BackfillRun(Base):
    """One ``cmdb-sync backfill`` of an org (or of one app): what a second run needs to resume it."""

    __tablename__ = "backfill_runs"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    org_id: Mapped[str] = mapped_column(String)
    scope: Mapped[str] = mapped_column(String, comment="the app it was limited to, or '' for the whole org")
    started_at: Mapped[datetime] = mapped_column(comment="objects not seen since this time are gone from the source")
    finished_at: Mapped[datetime | None]
    completed_apps: Mapped[list[Any]] = mapped_column(comment="apps whose objects are all ingested")

    __table_args__ = (Index(None, "org_id", "scope", "finished_at"),)
