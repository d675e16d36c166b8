"""``/api/v1`` history routes: each object's versions, and the change feed across the inventory."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from sqlalchemy.orm import Session

from cmdb_sync.api.auth import Principal
from cmdb_sync.api.openapi import API_SECURITY, answered_by
from cmdb_sync.api.params import (
    Cursor,
    Limit,
    OrgId,
    Reveal,
    allow_reveal,
    reject_unknown_query_parameters,
    time_bound,
)
from cmdb_sync.api.problems import LIST_PROBLEMS, NESTED_LIST_PROBLEMS
from cmdb_sync.errors import BadRequest
from cmdb_sync.read import history
from cmdb_sync.read.common import Window
from cmdb_sync.read.history import HISTORY_KINDS, ChangeOut, VersionOut
from cmdb_sync.read.pagination import DEFAULT_LIMIT
from cmdb_sync.read.views import HistoryPage

HiddenToo = Annotated[bool, QueryParameter(description="also the versions an App Delete hides")]


class HistoryController(Controller):
    path = "/api/v1"
    tags = ["history"]
    before_request = reject_unknown_query_parameters
    security = API_SECURITY

    @get("/apps/{app:str}/history", responses=NESTED_LIST_PROBLEMS, sync_to_thread=True, summary="An app's versions")
    def app_history(
        self,
        db: NamedDependency[Session],
        app: FromPath[str],
        org_id: OrgId = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> HistoryPage[VersionOut]:
        return history.history(db, "App", app, app, Window(limit, cursor, True), org_id=org_id)

    @get(
        "/apps/{app:str}/envs/{env:str}/history",
        responses=NESTED_LIST_PROBLEMS,
        sync_to_thread=True,
        summary="An environment's versions",
        operation_class=answered_by("env_history"),
    )
    def env_history(
        self,
        db: NamedDependency[Session],
        app: FromPath[str],
        env: FromPath[str],
        org_id: OrgId = None,
        include_deleted: HiddenToo = False,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> HistoryPage[VersionOut]:
        return history.history(db, "Env", app, env, Window(limit, cursor, include_deleted), org_id=org_id)

    @get(
        "/apps/{app:str}/variable-groups/{name:str}/history",
        responses=NESTED_LIST_PROBLEMS,
        sync_to_thread=True,
        summary="A variable group's versions (values masked unless revealed to an admin)",
    )
    def variable_group_history(
        self,
        db: NamedDependency[Session],
        who: NamedDependency[Principal],
        app: FromPath[str],
        name: FromPath[str],
        org_id: OrgId = None,
        include_deleted: HiddenToo = False,
        reveal: Reveal = False,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> HistoryPage[VersionOut]:
        window = Window(limit, cursor, include_deleted)
        return history.history(db, "VariableGroup", app, name, window, org_id=org_id, reveal=allow_reveal(who, reveal))

    @get(
        "/apps/{app:str}/orchestrations/{sn:str}/history",
        responses=NESTED_LIST_PROBLEMS,
        sync_to_thread=True,
        summary="An orchestration's versions",
    )
    def orchestration_history(
        self,
        db: NamedDependency[Session],
        app: FromPath[str],
        sn: FromPath[str],
        org_id: OrgId = None,
        include_deleted: HiddenToo = False,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> HistoryPage[VersionOut]:
        return history.history(db, "AppOrchestration", app, sn, Window(limit, cursor, include_deleted), org_id=org_id)

    @get(
        "/changes",
        responses=LIST_PROBLEMS,
        sync_to_thread=True,
        summary="Every version across the inventory, oldest first (a feed to follow)",
        operation_class=answered_by("changes"),
    )
    def list_changes(
        self,
        db: NamedDependency[Session],
        who: NamedDependency[Principal],
        since: Annotated[datetime | None, QueryParameter(description="event time at or after (ISO-8601)")] = None,
        until: Annotated[datetime | None, QueryParameter(description="event time before (ISO-8601)")] = None,
        app: Annotated[str | None, QueryParameter(description="the app's name")] = None,
        kind: Annotated[str | None, QueryParameter(description=", ".join(HISTORY_KINDS))] = None,
        org_id: OrgId = None,
        include_deleted: HiddenToo = False,
        reveal: Reveal = False,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> HistoryPage[ChangeOut]:
        if kind is not None and kind not in HISTORY_KINDS:
            msg = f"kind: one of {', '.join(HISTORY_KINDS)}"
            raise BadRequest(msg, field="kind")
        return history.change_feed(
            db,
            Window(limit, cursor, include_deleted),
            since=time_bound(since, "since"),
            until=time_bound(until, "until"),
            app=app,
            kind=kind,
            org_id=org_id,
            reveal=allow_reveal(who, reveal),
        )
