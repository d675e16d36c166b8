"""``/api/v1``: the read-only inventory. Handlers parse, call one function of ``inventory`` or
``history`` in a worker thread, and return its model; every error is a domain exception."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from litestar import Controller, Request, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, QueryParameter
from sqlalchemy.orm import Session

from cmdb_sync import history, inventory
from cmdb_sync.api.auth import Principal, principal
from cmdb_sync.api.schemas import (
    AppOut,
    ChangeOrderDetailOut,
    ChangeOrderOut,
    ChangeRequestOut,
    EnvOut,
    EventDetailOut,
    EventOut,
    OrchestrationOut,
    Page,
    ReleaseStageExecutionOut,
    VariableGroupOut,
    problem_responses,
)
from cmdb_sync.errors import BadRequest
from cmdb_sync.inventory import EventFilters, Window
from cmdb_sync.pagination import DEFAULT_LIMIT, MAX_LIMIT
from cmdb_sync.services import Services

Limit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description=f"page size, at most {MAX_LIMIT}")]
Cursor = Annotated[str | None, QueryParameter(description="next_cursor of the previous page")]
OrgId = Annotated[str | None, QueryParameter(description="the org, when the name exists in several")]
IncludeDeleted = Annotated[bool, QueryParameter(description="also list deleted objects")]
Reveal = Annotated[bool, QueryParameter(description="serve variable values (admin token only)")]


def session_of(request: Request) -> Session:
    services: Services = request.app.state.services
    return services.read_session_factory()


async def reject_unknown_query_parameters(request: Request) -> None:
    """Unknown query parameters are a 400, not silently ignored: a typo must not widen a query.
    NUL, which no stored name contains, is refused before it reaches the database."""
    not_query = {"self", "request", *InventoryController.dependencies, *request.path_params}
    allowed = {
        getattr(field.kwarg_definition, "name", None) or name
        for name, field in request.route_handler.parsed_fn_signature.parameters.items()
        if name not in not_query
    }
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        msg = f"unknown query parameter(s): {', '.join(unknown)}"
        raise BadRequest(msg, unknown=unknown)
    values = [*request.path_params.values(), *(v for _, v in request.query_params.multi_items())]
    if any("\x00" in str(value) for value in values):
        msg = "parameters may not contain U+0000 (stored names hold U+FFFD in its place)"
        raise BadRequest(msg)


def utc(value: datetime | None) -> datetime | None:
    """Query times without an offset are read as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def allow_reveal(who: NamedDependency[Principal], reveal: bool) -> bool:
    if reveal:
        who.require_admin("reveal=true")
    return reveal


LIST_PROBLEMS = problem_responses(400, 401, 403, 409, 503)
ONE_PROBLEMS = problem_responses(400, 401, 403, 404, 409, 503)
NESTED_LIST_PROBLEMS = ONE_PROBLEMS  # a list under an app answers 404 when the app is not there


class InventoryController(Controller):
    path = "/api/v1"
    tags = ["inventory"]
    dependencies = {"who": Provide(principal, sync_to_thread=False)}
    before_request = reject_unknown_query_parameters

    @get("/apps", responses=LIST_PROBLEMS, sync_to_thread=True, summary="Apps")
    def list_apps(
        self,
        request: Request,
        who: NamedDependency[Principal],
        q: Annotated[str | None, QueryParameter(description="substring of the name, any case")] = None,
        org_id: OrgId = None,
        include_deleted: IncludeDeleted = False,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[AppOut]:
        with session_of(request) as session:
            return inventory.list_apps(session, Window(limit, cursor, include_deleted), q=q, org_id=org_id)

    @get("/apps/{app:str}", responses=ONE_PROBLEMS, sync_to_thread=True, summary="An app")
    def get_app(
        self,
        request: Request,
        who: NamedDependency[Principal],
        app: FromPath[str],
        org_id: OrgId = None,
        include_deleted: IncludeDeleted = False,
    ) -> AppOut:
        with session_of(request) as session:
            return inventory.get_app(session, app, org_id=org_id, include_deleted=include_deleted)

    @get("/apps/{app:str}/envs", responses=NESTED_LIST_PROBLEMS, sync_to_thread=True, summary="An app's environments")
    def list_app_envs(
        self,
        request: Request,
        who: NamedDependency[Principal],
        app: FromPath[str],
        org_id: OrgId = None,
        include_deleted: IncludeDeleted = False,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[EnvOut]:
        with session_of(request) as session:
            return inventory.list_app_envs(session, app, Window(limit, cursor, include_deleted), org_id=org_id)

    @get(
        "/apps/{app:str}/envs/{env:str}",
        responses=ONE_PROBLEMS,
        sync_to_thread=True,
        summary="An environment, with its current deployment",
    )
    def get_env(
        self,
        request: Request,
        who: NamedDependency[Principal],
        app: FromPath[str],
        env: FromPath[str],
        org_id: OrgId = None,
        include_deleted: IncludeDeleted = False,
    ) -> EnvOut:
        with session_of(request) as session:
            return inventory.get_env(session, app, env, org_id=org_id, include_deleted=include_deleted)

    @get("/envs", responses=LIST_PROBLEMS, sync_to_thread=True, summary="Environments across apps")
    def list_envs(
        self,
        request: Request,
        who: NamedDependency[Principal],
        app: Annotated[str | None, QueryParameter(description="only this app's envs")] = None,
        label: Annotated[
            list[str] | None, QueryParameter(description="name=value; repeat it: every label must match")
        ] = None,
        artifact: Annotated[
            str | None, QueryParameter(description="substring of an artifact of the current deployment (an image, say)")
        ] = None,
        org_id: OrgId = None,
        include_deleted: IncludeDeleted = False,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[EnvOut]:
        labels = inventory.parse_label_filters(label)
        with session_of(request) as session:
            return inventory.list_envs(
                session,
                Window(limit, cursor, include_deleted),
                app=app,
                org_id=org_id,
                labels=labels,
                artifact=artifact,
            )

    @get(
        "/apps/{app:str}/variable-groups",
        responses=NESTED_LIST_PROBLEMS,
        sync_to_thread=True,
        summary="An app's variable groups",
    )
    def list_variable_groups(
        self,
        request: Request,
        who: NamedDependency[Principal],
        app: FromPath[str],
        org_id: OrgId = None,
        include_deleted: IncludeDeleted = False,
        reveal: Reveal = False,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[VariableGroupOut]:
        revealed = allow_reveal(who, reveal)
        with session_of(request) as session:
            return inventory.list_variable_groups(
                session, app, Window(limit, cursor, include_deleted), org_id=org_id, reveal=revealed
            )

    @get(
        "/apps/{app:str}/variable-groups/{name:str}",
        responses=ONE_PROBLEMS,
        sync_to_thread=True,
        summary="A variable group",
    )
    def get_variable_group(
        self,
        request: Request,
        who: NamedDependency[Principal],
        app: FromPath[str],
        name: FromPath[str],
        org_id: OrgId = None,
        include_deleted: IncludeDeleted = False,
        reveal: Reveal = False,
    ) -> VariableGroupOut:
        revealed = allow_reveal(who, reveal)
        with session_of(request) as session:
            return inventory.get_variable_group(
                session, app, name, org_id=org_id, include_deleted=include_deleted, reveal=revealed
            )

    @get(
        "/apps/{app:str}/orchestrations",
        responses=NESTED_LIST_PROBLEMS,
        sync_to_thread=True,
        summary="An app's orchestrations",
    )
    def list_orchestrations(
        self,
        request: Request,
        who: NamedDependency[Principal],
        app: FromPath[str],
        org_id: OrgId = None,
        include_deleted: IncludeDeleted = False,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[OrchestrationOut]:
        with session_of(request) as session:
            return inventory.list_orchestrations(session, app, Window(limit, cursor, include_deleted), org_id=org_id)

    @get(
        "/apps/{app:str}/orchestrations/{sn:str}",
        responses=ONE_PROBLEMS,
        sync_to_thread=True,
        summary="An orchestration",
    )
    def get_orchestration(
        self,
        request: Request,
        who: NamedDependency[Principal],
        app: FromPath[str],
        sn: FromPath[str],
        org_id: OrgId = None,
        include_deleted: IncludeDeleted = False,
    ) -> OrchestrationOut:
        with session_of(request) as session:
            return inventory.get_orchestration(session, app, sn, org_id=org_id, include_deleted=include_deleted)

    @get(
        "/apps/{app:str}/change-orders",
        responses=NESTED_LIST_PROBLEMS,
        sync_to_thread=True,
        summary="An app's deployments, newest first",
    )
    def list_change_orders(
        self,
        request: Request,
        who: NamedDependency[Principal],
        app: FromPath[str],
        env: Annotated[str | None, QueryParameter(description="only change orders with a job for this env")] = None,
        state_filter: Annotated[
            str | None, QueryParameter(name="state", description="change order state, e.g. SUCCESS, FAILED")
        ] = None,
        org_id: OrgId = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[ChangeOrderOut]:
        with session_of(request) as session:
            owner = inventory.resolve_app(session, app, org_id, include_deleted=True)
            return history.list_change_orders(session, owner, limit=limit, cursor=cursor, env=env, state=state_filter)

    @get(
        "/change-orders/{sn:str}",
        responses=ONE_PROBLEMS,
        sync_to_thread=True,
        summary="A deployment, with its rendered manifests",
    )
    def get_change_order(
        self, request: Request, who: NamedDependency[Principal], sn: FromPath[str], org_id: OrgId = None
    ) -> ChangeOrderDetailOut:
        with session_of(request) as session:
            return history.get_change_order(session, sn, org_id=org_id)

    @get(
        "/apps/{app:str}/change-requests",
        responses=NESTED_LIST_PROBLEMS,
        sync_to_thread=True,
        summary="An app's change requests, newest first",
    )
    def list_change_requests(
        self,
        request: Request,
        who: NamedDependency[Principal],
        app: FromPath[str],
        state_filter: Annotated[
            str | None, QueryParameter(name="state", description="e.g. DEVELOPING, INTEGRATING")
        ] = None,
        org_id: OrgId = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[ChangeRequestOut]:
        with session_of(request) as session:
            owner = inventory.resolve_app(session, app, org_id, include_deleted=True)
            return history.list_change_requests(session, owner, limit=limit, cursor=cursor, state=state_filter)

    @get(
        "/release-stage-executions",
        responses=LIST_PROBLEMS,
        sync_to_thread=True,
        summary="Pipeline runs of release stages, newest first",
    )
    def list_release_stage_executions(
        self,
        request: Request,
        who: NamedDependency[Principal],
        workflow_sn: Annotated[str | None, QueryParameter(description="release workflow sn")] = None,
        stage_sn: Annotated[str | None, QueryParameter(description="release stage sn")] = None,
        state_filter: Annotated[
            str | None, QueryParameter(name="state", description="run state, e.g. SUCCESS, FAILED")
        ] = None,
        org_id: OrgId = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[ReleaseStageExecutionOut]:
        with session_of(request) as session:
            return history.list_release_stage_executions(
                session,
                limit=limit,
                cursor=cursor,
                org_id=org_id,
                workflow_sn=workflow_sn,
                stage_sn=stage_sn,
                state=state_filter,
            )

    @get(
        "/events",
        responses=LIST_PROBLEMS,
        sync_to_thread=True,
        summary="The event journal, newest received first (admin)",
    )
    def list_events(
        self,
        request: Request,
        who: NamedDependency[Principal],
        kind: Annotated[str | None, QueryParameter(description="objectKind")] = None,
        action: Annotated[str | None, QueryParameter(description="X-AppStack-Action")] = None,
        app: Annotated[str | None, QueryParameter(description="X-AppStack-App")] = None,
        status: Annotated[str | None, QueryParameter(description="applied, stale, unsupported or failed")] = None,
        since: Annotated[datetime | None, QueryParameter(description="event time at or after (ISO-8601)")] = None,
        until: Annotated[datetime | None, QueryParameter(description="event time before (ISO-8601)")] = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[EventOut]:
        who.require_admin("the event journal")
        filters = EventFilters(kind=kind, action=action, app=app, status=status, since=utc(since), until=utc(until))
        with session_of(request) as session:
            return inventory.list_events(session, Window(limit, cursor), filters)

    @get(
        "/events/{event_id:str}",
        responses=ONE_PROBLEMS,
        sync_to_thread=True,
        summary="One journaled delivery: headers and body (admin)",
    )
    def get_event(self, request: Request, who: NamedDependency[Principal], event_id: FromPath[str]) -> EventDetailOut:
        who.require_admin("the event journal")
        with session_of(request) as session:
            return inventory.get_event(session, event_id)
