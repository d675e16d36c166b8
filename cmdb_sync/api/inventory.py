"""``/api/v1`` inventory routes: apps, environments, variable groups, orchestrations.

Handlers parse, call one function of ``read.inventory`` in a worker thread with the session they
are given, and return its view; every error is a domain exception. One env, the most read route,
is answered on the event loop on PostgreSQL (``read.hot``).
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, get
from litestar.concurrency import sync_to_thread
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from sqlalchemy.orm import Session

from cmdb_sync.api.auth import Principal
from cmdb_sync.api.openapi import API_SECURITY, answered_by
from cmdb_sync.api.params import (
    AsOfParam,
    Cursor,
    IncludeDeleted,
    Limit,
    OrgId,
    Reveal,
    allow_reveal,
    answered,
    read_session,
    reads_primary,
    reject_unknown_query_parameters,
)
from cmdb_sync.api.problems import AS_OF_LIST_PROBLEMS, AS_OF_ONE_PROBLEMS
from cmdb_sync.api.state import server_state
from cmdb_sync.read import inventory
from cmdb_sync.read.asof import AsOf, parse_as_of
from cmdb_sync.read.common import Window
from cmdb_sync.read.pagination import DEFAULT_LIMIT
from cmdb_sync.read.views import AppOut, EnvOut, OrchestrationOut, Page, VariableGroupOut


class InventoryController(Controller):
    path = "/api/v1"
    tags = ["inventory"]
    before_request = reject_unknown_query_parameters
    security = API_SECURITY

    @get("/apps", responses=AS_OF_LIST_PROBLEMS, sync_to_thread=True, summary="Apps")
    def list_apps(
        self,
        db: NamedDependency[Session],
        q: Annotated[str | None, QueryParameter(description="substring of the name, any case")] = None,
        org_id: OrgId = None,
        include_deleted: IncludeDeleted = False,
        as_of: AsOfParam = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[AppOut]:
        window = Window(limit, cursor, include_deleted)
        if (at := parse_as_of(as_of)) is not None:
            return AsOf(db, at).list_apps(window, q=q, org_id=org_id)
        return inventory.list_apps(db, window, q=q, org_id=org_id)

    @get("/apps/{app:str}", responses=AS_OF_ONE_PROBLEMS, sync_to_thread=True, summary="An app")
    def get_app(
        self,
        db: NamedDependency[Session],
        app: FromPath[str],
        org_id: OrgId = None,
        include_deleted: IncludeDeleted = False,
        as_of: AsOfParam = None,
    ) -> AppOut:
        if (at := parse_as_of(as_of)) is not None:
            reader = AsOf(db, at)
            return reader.app_out(reader.resolve_app(app, org_id, include_deleted))
        return inventory.get_app(db, app, org_id=org_id, include_deleted=include_deleted)

    @get("/apps/{app:str}/envs", responses=AS_OF_ONE_PROBLEMS, sync_to_thread=True, summary="An app's environments")
    def list_app_envs(
        self,
        db: NamedDependency[Session],
        app: FromPath[str],
        org_id: OrgId = None,
        include_deleted: IncludeDeleted = False,
        as_of: AsOfParam = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[EnvOut]:
        window = Window(limit, cursor, include_deleted)
        if (at := parse_as_of(as_of)) is not None:
            return AsOf(db, at).list_owned("Env", window, app_name=app, org_id=org_id, within_app=True)
        return answered(inventory.list_app_envs(db, app, window, org_id=org_id, serialized=True))

    @get(
        "/apps/{app:str}/envs/{env:str}",
        responses=AS_OF_ONE_PROBLEMS,
        summary="An environment, with its current deployment",
        operation_class=answered_by("env_as_of"),
    )
    async def get_env(
        self,
        request: Request,  # type: ignore[type-arg]
        app: FromPath[str],
        env: FromPath[str],
        org_id: OrgId = None,
        include_deleted: IncludeDeleted = False,
        as_of: AsOfParam = None,
    ) -> EnvOut:
        """The most read route: on PostgreSQL, now, on the event loop (``read.hot``)."""
        hot = server_state(request).async_reads
        if hot is not None and as_of is None:
            found = await hot.get_env(
                app, env, org_id=org_id, include_deleted=include_deleted, primary=reads_primary(request)
            )
            return answered(found)

        def read() -> EnvOut:
            with read_session(request) as db:
                if (at := parse_as_of(as_of)) is not None:
                    return AsOf(db, at).get_owned(
                        "Env", "env", app, env, org_id=org_id, include_deleted=include_deleted
                    )
                return answered(
                    inventory.get_env(db, app, env, org_id=org_id, include_deleted=include_deleted, serialized=True)
                )

        return await sync_to_thread(read)

    @get("/envs", responses=AS_OF_LIST_PROBLEMS, summary="Environments across apps")
    async def list_envs(
        self,
        request: Request,  # type: ignore[type-arg]
        app: Annotated[str | None, QueryParameter(description="only this app's envs")] = None,
        label: Annotated[
            list[str] | None, QueryParameter(description="name=value; repeat it: every label must match")
        ] = None,
        artifact: Annotated[
            str | None, QueryParameter(description="substring of an artifact of the current deployment (an image, say)")
        ] = None,
        org_id: OrgId = None,
        include_deleted: IncludeDeleted = False,
        as_of: AsOfParam = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[EnvOut]:
        """On PostgreSQL, now, on the event loop (``read.hot``), as ``get_env``."""
        labels = inventory.parse_label_filters(label)
        window = Window(limit, cursor, include_deleted)
        hot = server_state(request).async_reads
        if hot is not None and as_of is None:
            stmt = inventory.envs_statement(
                include_deleted, app=app, org_id=org_id, labels=labels, artifact=artifact, cursor=cursor
            )
            return answered(await hot.envs_page(stmt, window, primary=reads_primary(request)))

        def read() -> Page[EnvOut]:
            with read_session(request) as db:
                if (at := parse_as_of(as_of)) is not None:
                    return AsOf(db, at).list_envs(window, app_name=app, org_id=org_id, labels=labels, artifact=artifact)
                return answered(
                    inventory.list_envs(
                        db, window, app=app, org_id=org_id, labels=labels, artifact=artifact, serialized=True
                    )
                )

        return await sync_to_thread(read)

    @get(
        "/apps/{app:str}/variable-groups",
        responses=AS_OF_ONE_PROBLEMS,
        sync_to_thread=True,
        summary="An app's variable groups",
    )
    def list_variable_groups(
        self,
        db: NamedDependency[Session],
        app: FromPath[str],
        org_id: OrgId = None,
        include_deleted: IncludeDeleted = False,
        as_of: AsOfParam = None,
        reveal: Reveal = False,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
        *,
        who: NamedDependency[Principal],
    ) -> Page[VariableGroupOut]:
        revealed = allow_reveal(who, reveal)
        window = Window(limit, cursor, include_deleted)
        if (at := parse_as_of(as_of)) is not None:
            reader = AsOf(db, at, reveal=revealed)
            return reader.list_owned("VariableGroup", window, app_name=app, org_id=org_id, within_app=True)
        return inventory.list_variable_groups(db, app, window, org_id=org_id, reveal=revealed)

    @get(
        "/apps/{app:str}/variable-groups/{name:str}",
        responses=AS_OF_ONE_PROBLEMS,
        sync_to_thread=True,
        summary="A variable group",
    )
    def get_variable_group(
        self,
        db: NamedDependency[Session],
        app: FromPath[str],
        name: FromPath[str],
        org_id: OrgId = None,
        include_deleted: IncludeDeleted = False,
        as_of: AsOfParam = None,
        reveal: Reveal = False,
        *,
        who: NamedDependency[Principal],
    ) -> VariableGroupOut:
        revealed = allow_reveal(who, reveal)
        if (at := parse_as_of(as_of)) is not None:
            reader = AsOf(db, at, reveal=revealed)
            return reader.get_owned(
                "VariableGroup", "variable group", app, name, org_id=org_id, include_deleted=include_deleted
            )
        return inventory.get_variable_group(
            db, app, name, org_id=org_id, include_deleted=include_deleted, reveal=revealed
        )

    @get(
        "/apps/{app:str}/orchestrations",
        responses=AS_OF_ONE_PROBLEMS,
        sync_to_thread=True,
        summary="An app's orchestrations",
    )
    def list_orchestrations(
        self,
        db: NamedDependency[Session],
        app: FromPath[str],
        org_id: OrgId = None,
        include_deleted: IncludeDeleted = False,
        as_of: AsOfParam = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[OrchestrationOut]:
        window = Window(limit, cursor, include_deleted)
        if (at := parse_as_of(as_of)) is not None:
            return AsOf(db, at).list_owned("AppOrchestration", window, app_name=app, org_id=org_id, within_app=True)
        return inventory.list_orchestrations(db, app, window, org_id=org_id)

    @get(
        "/apps/{app:str}/orchestrations/{sn:str}",
        responses=AS_OF_ONE_PROBLEMS,
        sync_to_thread=True,
        summary="An orchestration",
    )
    def get_orchestration(
        self,
        db: NamedDependency[Session],
        app: FromPath[str],
        sn: FromPath[str],
        org_id: OrgId = None,
        include_deleted: IncludeDeleted = False,
        as_of: AsOfParam = None,
    ) -> OrchestrationOut:
        if (at := parse_as_of(as_of)) is not None:
            reader = AsOf(db, at)
            return reader.get_owned(
                "AppOrchestration", "orchestration", app, sn, org_id=org_id, include_deleted=include_deleted
            )
        return inventory.get_orchestration(db, app, sn, org_id=org_id, include_deleted=include_deleted)
