"""Deployments and changes (change orders, change requests, pipeline runs), and what runs where:
an env's current deployment is its newest change-order job in state SUCCESS.

These kinds are history: an app's deletion does not hide them, so these queries never join the
app's tombstones, and the app they are listed under is looked up deleted or not.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import Connection, Select, String, and_, bindparam, exists, func, select, tuple_
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, aliased, defer, selectinload
from sqlalchemy.sql.elements import ColumnElement

from cmdb_sync.models import (
    ChangeOrder,
    ChangeOrderJob,
    ChangeOrderStage,
    ChangeOrderTask,
    ChangeRequest,
    Env,
    ReleaseStageExecution,
)
from cmdb_sync.read.common import Window, one_named, resolve_app
from cmdb_sync.read.pagination import paginate
from cmdb_sync.read.views import (
    ChangeOrderDetailOut,
    ChangeOrderOut,
    ChangeRequestOut,
    DeploymentOut,
    Page,
    ReleaseStageExecutionOut,
    versioned_out,
)

SUCCESS = "SUCCESS"


def newest_first(job: Any) -> list[Any]:
    return [job.ended_at.desc().nulls_last(), job.started_at.desc().nulls_last(), job.id.desc()]


def current_deployments(session: Session, envs: Sequence[Any]) -> dict[int, DeploymentOut]:
    """The current deployment of each env (anything with ``id``, ``org_id``, ``app_name``,
    ``name``), by env id, in one query for any number of envs."""
    if not envs:
        return {}
    by_key = {(env.org_id, env.app_name, env.name): env.id for env in envs}
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        orgs, apps, names = (list(column) for column in zip(*by_key, strict=True))
        params: dict[str, Any] = {"orgs": orgs, "apps": apps, "envs": names}
    else:
        params = {"keys": list(by_key)}
    rows = conn.execute(_current_deployments_statement(conn.dialect.name), params).mappings()
    found: dict[int, DeploymentOut] = {}
    for row in rows:
        env_id = by_key.get((row["org_id"], row["app_name"], row["env_name"]))
        if env_id is not None:
            found[env_id] = DeploymentOut(
                change_order_sn=row["sn"], version=row["version"], artifacts=row["artifacts"], ended_at=row["ended_at"]
            )
    return found


@cache
def _current_deployments_statement(dialect: str) -> Select[Any]:
    """On PostgreSQL the envs' keys come as three arrays joined through ``unnest``: a row-value
    ``IN`` of 100 keys is planned as a 100-branch OR, and planning it cost more than running it."""
    job = ChangeOrderJob
    if dialect == "postgresql":
        text_array = postgresql.ARRAY(String)
        keys = (
            func.unnest(
                bindparam("orgs", type_=text_array),
                bindparam("apps", type_=text_array),
                bindparam("envs", type_=text_array),
            )
            .table_valued("org_id", "app_name", "env_name")
            .render_derived()
        )
        wanted = (
            select(job.id)
            .join(
                keys,
                and_(keys.c.org_id == job.org_id, keys.c.app_name == job.app_name, keys.c.env_name == job.env_name),
            )
            .scalar_subquery()
        )
        of_those_envs = job.id.in_(wanted)
    else:
        of_those_envs = tuple_(job.org_id, job.app_name, job.env_name).in_(bindparam("keys", expanding=True))
    ranked = (
        select(
            job.org_id,
            job.app_name,
            job.env_name,
            job.artifacts,
            job.ended_at,
            ChangeOrder.sn,
            ChangeOrder.version,
            func.row_number()
            .over(partition_by=[job.org_id, job.app_name, job.env_name], order_by=newest_first(job))
            .label("rank"),
        )
        .join(ChangeOrder, ChangeOrder.id == job.change_order_id)
        .where(job.state == SUCCESS)
        .where(of_those_envs)
        .subquery()
    )
    return select(ranked).where(ranked.c.rank == 1)


def current_deployment(conn: Connection, org_id: str, app_name: str, env_name: str) -> DeploymentOut | None:
    """The current deployment of one env: its newest change-order job in state SUCCESS, by the
    same ordering as ``current_deployments`` (``newest_first``), without its window query, which
    costs more than it saves for one env."""
    row = conn.execute(_current_deployment_statement(), {"org": org_id, "app": app_name, "env": env_name}).first()
    if row is None:
        return None
    return DeploymentOut(change_order_sn=row.sn, version=row.version, artifacts=row.artifacts, ended_at=row.ended_at)


@cache
def _current_deployment_statement() -> Select[Any]:
    job = ChangeOrderJob
    return (
        select(job.artifacts, job.ended_at, ChangeOrder.sn, ChangeOrder.version)
        .join(ChangeOrder, ChangeOrder.id == job.change_order_id)
        .where(
            job.org_id == bindparam("org"),
            job.app_name == bindparam("app"),
            job.env_name == bindparam("env"),
            job.state == SUCCESS,
        )
        .order_by(*newest_first(job))
        .limit(1)
    )


def envs_running_artifact(pattern: str) -> ColumnElement[bool]:
    """Condition on Env: its current deployment has an artifact matching ``pattern`` (LIKE, any case).

    Only an env with some successful job matching the pattern can match, so that is asked first
    (driven from the jobs, which the pattern narrows to a few); the current deployment is then
    looked up for those candidates alone, not for every env in the inventory. The jobs' text is
    stored lower-cased (``searchable_artifacts``), so the pattern is too, and LIKE suffices."""
    pattern = pattern.lower()
    job = aliased(ChangeOrderJob)
    current_artifacts = (
        select(job.artifacts_text)
        .where(job.org_id == Env.org_id, job.app_name == Env.app_name, job.env_name == Env.name, job.state == SUCCESS)
        .order_by(*newest_first(job))
        .limit(1)
        .correlate(Env)
        .scalar_subquery()
    )
    candidates = select(ChangeOrderJob.org_id, ChangeOrderJob.app_name, ChangeOrderJob.env_name).where(
        ChangeOrderJob.state == SUCCESS, ChangeOrderJob.artifacts_text.like(pattern, escape="\\")
    )
    return and_(
        tuple_(Env.org_id, Env.app_name, Env.name).in_(candidates),
        current_artifacts.like(pattern, escape="\\"),
    )


# --- change orders -------------------------------------------------------------------------------


def _jobs_loaded(*, with_manifests: bool) -> Any:
    """Jobs, stages and tasks in three queries; the rendered manifests only where asked for."""
    tasks = selectinload(ChangeOrder.jobs).selectinload(ChangeOrderJob.stages).selectinload(ChangeOrderStage.tasks)
    return tasks if with_manifests else tasks.options(defer(ChangeOrderTask.deliveries), defer(ChangeOrderTask.spec))


def list_change_orders(
    session: Session,
    app_name: str,
    window: Window,
    *,
    org_id: str | None,
    env: str | None,
    state: str | None,
) -> Page[ChangeOrderOut]:
    app = resolve_app(session, app_name, org_id, include_deleted=True)
    stmt: Select[Any] = (
        select(ChangeOrder)
        .where(ChangeOrder.org_id == app.org_id, ChangeOrder.app_name == app.name)
        .options(_jobs_loaded(with_manifests=False))
    )
    if state is not None:
        stmt = stmt.where(ChangeOrder.state == state)
    if env is not None:
        stmt = stmt.where(
            exists().where(ChangeOrderJob.change_order_id == ChangeOrder.id, ChangeOrderJob.env_name == env)
        )
    sort = func.coalesce(ChangeOrder.started_at, ChangeOrder.version_at)
    rows, next_cursor = paginate(
        session, stmt, [sort, ChangeOrder.sn], limit=window.limit, cursor=window.cursor, descending=True
    )
    items = [versioned_out(ChangeOrderOut, row[0]) for row in rows]
    return Page(items=items, next_cursor=next_cursor)


def get_change_order(session: Session, sn: str, *, org_id: str | None) -> ChangeOrderDetailOut:
    stmt = select(ChangeOrder).where(ChangeOrder.sn == sn).options(_jobs_loaded(with_manifests=True))
    order = one_named(session, stmt, ChangeOrder.org_id, f"change order {sn!r}", org_id)
    return versioned_out(ChangeOrderDetailOut, order)


# --- change requests and release stage executions ------------------------------------------------


def list_change_requests(
    session: Session, app_name: str, window: Window, *, org_id: str | None, state: str | None
) -> Page[ChangeRequestOut]:
    app = resolve_app(session, app_name, org_id, include_deleted=True)
    stmt = select(ChangeRequest).where(ChangeRequest.org_id == app.org_id, ChangeRequest.app_name == app.name)
    if state is not None:
        stmt = stmt.where(ChangeRequest.state == state)
    sort = func.coalesce(ChangeRequest.created_at, ChangeRequest.version_at)
    rows, next_cursor = paginate(
        session, stmt, [sort, ChangeRequest.sn], limit=window.limit, cursor=window.cursor, descending=True
    )
    items = [versioned_out(ChangeRequestOut, row[0]) for row in rows]
    return Page(items=items, next_cursor=next_cursor)


def list_release_stage_executions(
    session: Session,
    window: Window,
    *,
    org_id: str | None,
    workflow_sn: str | None,
    stage_sn: str | None,
    state: str | None,
) -> Page[ReleaseStageExecutionOut]:
    stmt = select(ReleaseStageExecution)
    for column, value in (
        (ReleaseStageExecution.org_id, org_id),
        (ReleaseStageExecution.release_workflow_sn, workflow_sn),
        (ReleaseStageExecution.release_stage_sn, stage_sn),
        (ReleaseStageExecution.state, state),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    sort = func.coalesce(ReleaseStageExecution.started_at, ReleaseStageExecution.version_at)
    rows, next_cursor = paginate(
        session,
        stmt,
        [
            sort,
            ReleaseStageExecution.org_id,
            ReleaseStageExecution.release_workflow_sn,
            ReleaseStageExecution.release_stage_sn,
            ReleaseStageExecution.engine_instance_id,
        ],
        limit=window.limit,
        cursor=window.cursor,
        descending=True,
    )
    items = [versioned_out(ReleaseStageExecutionOut, row[0]) for row in rows]
    return Page(items=items, next_cursor=next_cursor)
