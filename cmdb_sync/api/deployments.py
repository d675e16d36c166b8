"""``/api/v1`` deployments and changes: change orders, change requests, pipeline runs.

These are history: an app's deletion does not hide them (``read.deployments`` decides that).
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from sqlalchemy.orm import Session

from cmdb_sync.api.openapi import API_SECURITY
from cmdb_sync.api.params import AsOfParam, Cursor, Limit, OrgId, reject_unknown_query_parameters
from cmdb_sync.api.problems import AS_OF_ONE_PROBLEMS, LIST_PROBLEMS, NESTED_LIST_PROBLEMS
from cmdb_sync.read import deployments
from cmdb_sync.read.asof import AsOf, parse_as_of
from cmdb_sync.read.common import Window
from cmdb_sync.read.pagination import DEFAULT_LIMIT
from cmdb_sync.read.views import ChangeOrderDetailOut, ChangeOrderOut, ChangeRequestOut, Page, ReleaseStageExecutionOut


class DeploymentsController(Controller):
    path = "/api/v1"
    tags = ["deployments"]
    before_request = reject_unknown_query_parameters
    security = API_SECURITY

    @get(
        "/apps/{app:str}/change-orders",
        responses=AS_OF_ONE_PROBLEMS,
        sync_to_thread=True,
        summary="An app's deployments, newest first",
    )
    def list_change_orders(
        self,
        db: NamedDependency[Session],
        app: FromPath[str],
        env: Annotated[str | None, QueryParameter(description="only change orders with a job for this env")] = None,
        state_filter: Annotated[
            str | None, QueryParameter(name="state", description="change order state, e.g. SUCCESS, FAILED")
        ] = None,
        org_id: OrgId = None,
        as_of: AsOfParam = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[ChangeOrderOut]:
        if (at := parse_as_of(as_of)) is not None:
            return AsOf(db, at).list_change_orders(
                app, Window(limit, cursor), org_id=org_id, env=env, state=state_filter
            )
        return deployments.list_change_orders(
            db, app, Window(limit, cursor), org_id=org_id, env=env, state=state_filter
        )

    @get(
        "/change-orders/{sn:str}",
        responses=AS_OF_ONE_PROBLEMS,
        sync_to_thread=True,
        summary="A deployment, with its rendered manifests",
    )
    def get_change_order(
        self, db: NamedDependency[Session], sn: FromPath[str], org_id: OrgId = None, as_of: AsOfParam = None
    ) -> ChangeOrderDetailOut:
        if (at := parse_as_of(as_of)) is not None:
            return AsOf(db, at).get_change_order(sn, org_id=org_id)
        return deployments.get_change_order(db, sn, org_id=org_id)

    @get(
        "/apps/{app:str}/change-requests",
        responses=NESTED_LIST_PROBLEMS,
        sync_to_thread=True,
        summary="An app's change requests, newest first",
    )
    def list_change_requests(
        self,
        db: NamedDependency[Session],
        app: FromPath[str],
        state_filter: Annotated[
            str | None, QueryParameter(name="state", description="e.g. DEVELOPING, INTEGRATING")
        ] = None,
        org_id: OrgId = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[ChangeRequestOut]:
        return deployments.list_change_requests(db, app, Window(limit, cursor), org_id=org_id, state=state_filter)

    @get(
        "/release-stage-executions",
        responses=LIST_PROBLEMS,
        sync_to_thread=True,
        summary="Pipeline runs of release stages, newest first",
    )
    def list_release_stage_executions(
        self,
        db: NamedDependency[Session],
        workflow_sn: Annotated[str | None, QueryParameter(description="release workflow sn")] = None,
        stage_sn: Annotated[str | None, QueryParameter(description="release stage sn")] = None,
        state_filter: Annotated[
            str | None, QueryParameter(name="state", description="run state, e.g. SUCCESS, FAILED")
        ] = None,
        org_id: OrgId = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[ReleaseStageExecutionOut]:
        return deployments.list_release_stage_executions(
            db,
            Window(limit, cursor),
            org_id=org_id,
            workflow_sn=workflow_sn,
            stage_sn=stage_sn,
            state=state_filter,
        )
