"""The web UI: server-rendered pages under ``/ui`` (Jinja templates, htmx for live search and
paging), reading through the same ``read`` functions as the API.

Sign-in takes the API's tokens: the form sets an HttpOnly, SameSite=Strict cookie (Secure over
https). With no API token configured the UI is open, as the API is. Variable values show only to
an admin who asks, exactly as in the API; the webhook token never appears.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, Response, Router, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from sqlalchemy.orm import Session

from cmdb_sync.api.auth import ACCESS, PUBLIC, Principal, identify
from cmdb_sync.api.params import reject_nul
from cmdb_sync.api.state import server_state
from cmdb_sync.errors import CmdbSyncError, NotFound, Unauthorized
from cmdb_sync.read import deployments, history, inventory, journal
from cmdb_sync.read.asof import AsOf, parse_as_of
from cmdb_sync.read.common import Window
from cmdb_sync.read.journal import EventFilters
from cmdb_sync.read.overview import app_summaries

COOKIE = "cmdb_sync_session"
PAGE = 100
HERE = Path(__file__).parent
HISTORY_KINDS = {"app": "App", "env": "Env", "variable-group": "VariableGroup", "orchestration": "AppOrchestration"}


class SignInRequired(Exception):
    def __init__(self, rejected: bool = False) -> None:
        super().__init__("sign in")
        self.rejected = rejected


@dataclass(frozen=True)
class Viewer:
    """Who is looking: whether the UI is open (no API token configured), and whether they are an admin."""

    principal: Principal
    open: bool

    @property
    def is_admin(self) -> bool:
        return self.principal.is_admin


def viewer(request: Request) -> Viewer:  # type: ignore[type-arg]
    settings = server_state(request).settings
    is_open = not settings.api_tokens and not settings.api_admin_tokens
    token = request.cookies.get(COOKIE)
    try:
        principal = identify(settings, f"Bearer {token}" if token else None)
    except Unauthorized:
        raise SignInRequired(rejected=token is not None) from None
    return Viewer(principal, is_open)


def page(request: Request, template: str, **context: Any) -> Template:  # type: ignore[type-arg]
    """A page, with what every page needs: who is looking, the as-of moment, the query string."""
    return Template(
        template_name=template,
        context={
            "viewer": context.pop("viewer", None),
            "request": request,
            "query": dict(request.query_params),
            **context,
        },
    )


def paging(request: Request, next_cursor: str | None) -> dict[str, str | None]:  # type: ignore[type-arg]
    """Links to the next and previous pages: the cursors walked so far travel in ``trail``."""
    params = {k: v for k, v in request.query_params.items() if k not in ("cursor", "trail")}
    trail = [c for c in request.query_params.get("trail", "").split(",") if c]
    here = request.query_params.get("cursor")
    next_link = previous_link = None
    if next_cursor:
        next_link = "?" + urlencode({**params, "cursor": next_cursor, "trail": ",".join([*trail, here or ""])})
    if here is not None:
        back = trail[:-1]
        previous = trail[-1] if trail else ""
        previous_link = "?" + urlencode(
            {**params, **({"cursor": previous} if previous else {}), **({"trail": ",".join(back)} if back else {})}
        )
    return {"next": next_link, "previous": previous_link}


def _as_of(request: Request) -> Any:  # type: ignore[type-arg]
    value = request.query_params.get("as_of") or None
    return parse_as_of(value)


# --- pages -----------------------------------------------------------------------------------------


@get("/", sync_to_thread=True)
def apps_page(request: Request, db: NamedDependency[Session]) -> Template:  # type: ignore[type-arg]
    who = viewer(request)
    q = request.query_params.get("q") or None
    window = Window(PAGE, request.query_params.get("cursor") or None)
    at = _as_of(request)
    found = (
        AsOf(db, at).list_apps(window, q=q, org_id=None) if at else inventory.list_apps(db, window, q=q, org_id=None)
    )
    summaries = {} if at else app_summaries(db, found.items)
    return page(
        request,
        "apps.html",
        viewer=who,
        apps=found.items,
        summaries=summaries,
        paging=paging(request, found.next_cursor),
    )


@get("/apps/{org_id:str}/{app:str}", sync_to_thread=True)
def app_page(
    request: Request,  # type: ignore[type-arg]
    db: NamedDependency[Session],
    org_id: FromPath[str],
    app: FromPath[str],
) -> Template:
    who = viewer(request)
    reveal = request.query_params.get("reveal") == "true" and who.is_admin
    at = _as_of(request)
    if at:
        reader = AsOf(db, at, reveal=reveal)
        the_app = reader.app_out(reader.resolve_app(app, org_id, include_deleted=True))
    else:
        the_app = inventory.get_app(db, app, org_id=org_id, include_deleted=True)
    # a deleted app's objects are all deleted with it: shown, marked, rather than an empty page
    everything = Window(500, None, request.query_params.get("include_deleted") == "true" or bool(the_app.deleted_at))
    if at:
        envs = reader.list_owned("Env", everything, app_name=app, org_id=org_id, within_app=True).items
        groups = reader.list_owned("VariableGroup", everything, app_name=app, org_id=org_id, within_app=True).items
        orchestrations = reader.list_owned(
            "AppOrchestration", everything, app_name=app, org_id=org_id, within_app=True
        ).items
        orders = reader.list_change_orders(app, Window(10, None), org_id=org_id, env=None, state=None).items
        requests_ = None  # change requests have no as-of view
    else:
        envs = inventory.list_app_envs(db, app, everything, org_id=org_id).items
        groups = inventory.list_variable_groups(db, app, everything, org_id=org_id, reveal=reveal).items
        orchestrations = inventory.list_orchestrations(db, app, everything, org_id=org_id).items
        orders = deployments.list_change_orders(db, app, Window(10, None), org_id=org_id, env=None, state=None).items
        requests_ = deployments.list_change_requests(db, app, Window(10, None), org_id=org_id, state=None).items
    return page(
        request,
        "app.html",
        viewer=who,
        app=the_app,
        envs=envs,
        groups=groups,
        orchestrations=orchestrations,
        orders=orders,
        change_requests=requests_,
        reveal=reveal,
    )


@get("/envs", sync_to_thread=True)
def envs_page(request: Request, db: NamedDependency[Session]) -> Template:  # type: ignore[type-arg]
    who = viewer(request)
    params = request.query_params
    pairs = [
        f"{name.strip()}={value.strip()}"
        for name, value in zip(params.getall("label_name", []), params.getall("label_value", []), strict=False)
        if name.strip()
    ]
    labels = inventory.parse_label_filters(pairs)
    artifact = (params.get("artifact") or "").strip() or None
    include_deleted = params.get("include_deleted") == "true"
    window = Window(PAGE, params.get("cursor") or None, include_deleted)
    at = _as_of(request)
    if at:
        found = AsOf(db, at).list_envs(window, app_name=None, org_id=None, labels=labels, artifact=artifact)
    else:
        found = inventory.list_envs(db, window, app=None, org_id=None, labels=labels, artifact=artifact)
    rows = max(2, len(pairs) + 1)
    filled = list(zip(params.getall("label_name", []), params.getall("label_value", []), strict=False))
    filled += [("", "")] * (rows - len(filled))
    return page(
        request,
        "envs.html",
        viewer=who,
        envs=found.items,
        label_rows=filled[:rows],
        artifact=artifact or "",
        include_deleted=include_deleted,
        paging=paging(request, found.next_cursor),
    )


@get("/change-orders/{org_id:str}/{sn:str}", sync_to_thread=True)
def change_order_page(
    request: Request,  # type: ignore[type-arg]
    db: NamedDependency[Session],
    org_id: FromPath[str],
    sn: FromPath[str],
) -> Template:
    who = viewer(request)
    at = _as_of(request)
    order = (
        AsOf(db, at).get_change_order(sn, org_id=org_id) if at else deployments.get_change_order(db, sn, org_id=org_id)
    )
    return page(request, "change_order.html", viewer=who, order=order)


@get("/history/{kind:str}/{org_id:str}/{app:str}/{name:str}", sync_to_thread=True)
def history_page(
    request: Request,  # type: ignore[type-arg]
    db: NamedDependency[Session],
    kind: FromPath[str],
    org_id: FromPath[str],
    app: FromPath[str],
    name: FromPath[str],
) -> Template:
    who = viewer(request)
    if kind not in HISTORY_KINDS:
        raise NotFound(f"no history of {kind!r}: one of {', '.join(HISTORY_KINDS)}")
    reveal = request.query_params.get("reveal") == "true" and who.is_admin
    window = Window(50, request.query_params.get("cursor") or None, True)
    versions = history.history(db, HISTORY_KINDS[kind], app, name, window, org_id=org_id, reveal=reveal)
    return page(
        request,
        "history.html",
        viewer=who,
        kind=kind,
        org_id=org_id,
        app=app,
        name=name,
        versions=versions.items,
        archived_before=versions.archived_before,
        paging=paging(request, versions.next_cursor),
    )


@get("/journal", sync_to_thread=True)
def journal_page(request: Request, db: NamedDependency[Session]) -> Template:  # type: ignore[type-arg]
    who = viewer(request)
    who.principal.require_admin("the journal")
    status = request.query_params.get("status") or None
    window = Window(PAGE, request.query_params.get("cursor") or None)
    events = journal.list_events(db, window, EventFilters(status=status))
    return page(
        request,
        "journal.html",
        viewer=who,
        events=events.items,
        status=status or "",
        paging=paging(request, events.next_cursor),
    )


@get("/journal/{event_id:str}", sync_to_thread=True)
def event_page(request: Request, db: NamedDependency[Session], event_id: FromPath[str]) -> Template:  # type: ignore[type-arg]
    who = viewer(request)
    who.principal.require_admin("the journal")
    return page(request, "event.html", viewer=who, event=journal.get_event(db, event_id))


# --- signing in and out ----------------------------------------------------------------------------


@get("/login", sync_to_thread=False)
def login_page(request: Request) -> Template:  # type: ignore[type-arg]
    return page(request, "login.html", rejected=request.query_params.get("rejected") == "1", next=_safe_next(request))


@post("/login", status_code=303, sync_to_thread=False)
def login(
    request: Request,  # type: ignore[type-arg]
    data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Response[Any]:
    token = (data.get("token") or "").strip()
    settings = server_state(request).settings
    try:
        identify(settings, f"Bearer {token}" if token else None)
    except Unauthorized:
        query = urlencode({"rejected": "1", "next": _safe_next(request, data.get("next"))})
        return Redirect(f"/ui/login?{query}", status_code=303)
    response = Redirect(_safe_next(request, data.get("next")), status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        path="/",
        httponly=True,
        samesite="strict",
        secure=_over_https(request),
        max_age=12 * 3600,
    )
    return response


@post("/logout", status_code=303, sync_to_thread=False)
def logout() -> Response[Any]:
    response = Redirect("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def _over_https(request: Request) -> bool:  # type: ignore[type-arg]
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def _safe_next(request: Request, value: str | None = None) -> str:  # type: ignore[type-arg]
    """Where to go after signing in: a path of this UI only (never another site)."""
    target = value if value is not None else request.query_params.get("next", "")
    return target if target.startswith("/ui") and not target.startswith("//") else "/ui"


# --- errors ------------------------------------------------------------------------------------------


def to_sign_in(request: Request, exc: SignInRequired) -> Response[Any]:  # type: ignore[type-arg]
    query = {"next": request.url.path + (f"?{request.url.query}" if request.url.query else "")}
    if exc.rejected:
        query["rejected"] = "1"
    response = Redirect(f"/ui/login?{urlencode(query)}")
    if exc.rejected:
        response.delete_cookie(COOKIE, path="/")
    return response


def error_page(request: Request, exc: CmdbSyncError) -> Response[Any]:  # type: ignore[type-arg]
    status = exc.status_code if isinstance(exc.status_code, int) and exc.status_code < 500 else 400
    return Template(
        template_name="error.html",
        context={"viewer": None, "request": request, "query": {}, "status": status, "message": str(exc)},
        status_code=status,
    )


@get("/", include_in_schema=False, opt={ACCESS: PUBLIC}, sync_to_thread=False)
def root() -> Redirect:
    return Redirect("/ui")


def ui_router() -> Router:
    return Router(
        "/ui",
        route_handlers=[
            apps_page,
            app_page,
            envs_page,
            change_order_page,
            history_page,
            journal_page,
            event_page,
            login_page,
            login,
            logout,
            create_static_files_router("/static", directories=[HERE.parent / "static" / "ui"], include_in_schema=False),
        ],
        # the pages check the session cookie themselves (viewer()): the API's bearer guard lets them through
        opt={ACCESS: PUBLIC},
        before_request=reject_nul,
        include_in_schema=False,
        exception_handlers={SignInRequired: to_sign_in, CmdbSyncError: error_page},
    )


def as_json(value: Any) -> str:
    """A value as JSON text as it reads to a person: 环境级别, not \\u73af\\u5883."""
    return json.dumps(value, ensure_ascii=False, sort_keys=False, default=str)


def _filters(engine: JinjaTemplateEngine) -> None:
    engine.engine.filters["json"] = as_json
    engine.engine.filters["pretty"] = lambda value: json.dumps(value, ensure_ascii=False, indent=2, default=str)


def template_config() -> TemplateConfig:  # type: ignore[type-arg]
    return TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine, engine_callback=_filters)
