"""Every object's history: its versions (each snapshot received for it, applied or stale), newest
first, each with what changed against the version before it; and the change feed across the
inventory, oldest first.

A version's state is its journaled event projected again by the kind's own pure ``snapshot``
function and rendered by the same view code as the current state, so a version reads exactly as
the object read when that version was current. The versions table only indexes the journal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from functools import cache
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, Select, and_, bindparam, func, or_, select, tuple_
from sqlalchemy import inspect as inspect_model
from sqlalchemy.orm import Session, aliased

from cmdb_sync.errors import BadDelivery, NotFound, ProjectionError
from cmdb_sync.events import parse_envelope
from cmdb_sync.models import App, Event, JournalArchive, Version
from cmdb_sync.projections import REGISTRY
from cmdb_sync.projections.common import CHILDREN, Snapshot
from cmdb_sync.read.common import Window, resolve_app
from cmdb_sync.read.pagination import bound_page_statement, page_of, page_parameters, page_statement
from cmdb_sync.read.views import (
    AppOut,
    ChangeOrderDetailOut,
    DeploymentOut,
    EnvOut,
    HistoryPage,
    Schema,
    Timestamp,
    versioned_out,
)

HISTORY_KINDS = ("App", "Env", "VariableGroup", "AppOrchestration")
CHILD_KEYS = {  # how the items of each child list are matched between two versions
    "labels": lambda item: f"{item['name']}={item['value']}",
    "profiles": lambda item: item["name"],
    "vars": lambda item: item["key"],
    "placeholders": lambda item: item["name"],
    "components": lambda item: item["name"],
}
UNCOMPARED_TIME = datetime(1970, 1, 1, tzinfo=UTC)  # a view's updated_at, which changes never compare
NOT_COMPARED = frozenset({"org_id", "updated_at", "deleted_at", "current_deployment"})


class VersionOut(Schema):
    event_id: str
    time: Timestamp
    received_at: Timestamp
    actor_id: str | None
    action: str | None
    deleted: bool
    changes: list[dict[str, Any]]


class ChangeOut(VersionOut):
    """A version in the change feed: which object it is a version of, then the version."""

    kind: str
    org_id: str
    app_name: str | None
    name: str


# --- a version's state ---------------------------------------------------------------------------


def snapshot_of(kind: str, headers: dict[str, str], body: str) -> Snapshot | None:
    """The snapshot a journaled event makes (None for one that no longer parses)."""
    try:
        envelope, _ = parse_envelope(headers, body)
        return REGISTRY[kind].snapshot(envelope)
    except (BadDelivery, ProjectionError):  # received under looser rules: the version reads as nothing
        return None


@cache
def _relationship_names(model: Any) -> dict[Any, tuple[str, Any]]:
    return {rel.mapper.local_table: (rel.key, rel.mapper.class_) for rel in inspect_model(model).relationships}


def as_row(model: Any, values: dict[str, Any], children: Iterable[Any], **extra: Any) -> SimpleNamespace:
    """An object with the attributes a projected row of ``model`` has (columns, and child lists
    under their relationship names), built from a snapshot: what the view code reads."""
    row = SimpleNamespace(**{k: v for k, v in values.items() if k != CHILDREN}, **extra)
    names = _relationship_names(model)
    for group in children:
        key, child_model = names[group.table]
        setattr(row, key, [as_row(child_model, item, item.get(CHILDREN, ())) for item in group.rows])
    for key, _ in names.values():
        if not hasattr(row, key):
            setattr(row, key, [])
    return row


def render(
    kind: str,
    snapshot: Snapshot,
    *,
    time: datetime,
    event_id: str,
    deleted_at: datetime | None,
    reveal: bool = True,
    deployment: DeploymentOut | None = None,
) -> Schema:
    """The view of a version, exactly as the current-state routes render a row."""
    from cmdb_sync.read.inventory import orchestration_out, variable_group_out

    projection = REGISTRY[kind]
    row = as_row(
        projection.model,
        snapshot.values,
        snapshot.children,
        version_at=time,
        version_id=event_id,
        deleted_at=deleted_at,
    )
    if kind == "App":
        return versioned_out(AppOut, row)
    if kind == "Env":
        return versioned_out(EnvOut, row, current_deployment=deployment)
    if kind == "VariableGroup":
        return variable_group_out(row, deleted_at, reveal=reveal)  # type: ignore[arg-type]
    if kind == "AppOrchestration":
        return orchestration_out(row, deleted_at)  # type: ignore[arg-type]
    if kind == "ChangeOrder":
        return versioned_out(ChangeOrderDetailOut, row)
    msg = f"no view of {kind} versions"
    raise ValueError(msg)


# --- what changed --------------------------------------------------------------------------------


def changes(before: dict[str, Any] | None, after: dict[str, Any] | None, *, reveal: bool) -> list[dict[str, Any]]:
    """``after`` against ``before`` (views as JSON): scalar fields changed from → to; child lists
    with the items added, removed and changed. Variable values are masked unless revealed."""
    before, after = before or {}, after or {}
    found = []
    fields = [f for f in after if f not in NOT_COMPARED] + [
        f for f in before if f not in after and f not in NOT_COMPARED
    ]
    for field in fields:
        old, new = before.get(field), after.get(field)
        if old == new:
            continue
        if field in CHILD_KEYS and isinstance(new, list | None) and isinstance(old, list | None):
            child = _child_changes(field, old or [], new or [], reveal=reveal)
            if child["added"] or child["removed"] or child["changed"]:
                found.append(child)
        else:
            found.append({"field": field, "from": old, "to": new})
    return found


def _child_changes(field: str, old: list[dict[str, Any]], new: list[dict[str, Any]], *, reveal: bool) -> dict[str, Any]:
    key = CHILD_KEYS[field]
    olds, news = {key(item): item for item in old}, {key(item): item for item in new}
    shown = (lambda item: item) if reveal or field != "vars" else _masked
    return {
        "field": field,
        "added": [shown(news[k]) for k in news if k not in olds],
        "removed": [shown(olds[k]) for k in olds if k not in news],
        "changed": [
            {"key": k, "from": shown(olds[k]), "to": shown(news[k])} for k in news if k in olds and olds[k] != news[k]
        ],
    }


def _masked(variable: dict[str, Any]) -> dict[str, Any]:
    return {**variable, "value": None, "masked": True}


# --- reading versions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Version:
    event_id: str
    kind: str
    org_id: str
    app_name: str
    name: str
    time: datetime
    deleted: bool
    received_at: datetime
    actor_id: str | None
    action: str | None
    previous_id: str | None


_VERSION_FIELDS = tuple(f.name for f in fields(_Version))


def _previous_id() -> Any:
    """The event id of the version before ``Version`` (by ``(time, event_id)``) of the same object."""
    older = aliased(Version)
    return (
        select(older.event_id)
        .where(
            older.kind == Version.kind,
            older.app_name == Version.app_name,
            older.name == Version.name,
            older.org_id == Version.org_id,
            tuple_(older.time, older.event_id) < tuple_(Version.time, Version.event_id),
        )
        .order_by(older.time.desc(), older.event_id.desc())
        .limit(1)
        .correlate(Version)
        .scalar_subquery()
    )


@cache
def _versions_select() -> Select[Any]:
    return select(
        Version.event_id,
        Version.kind,
        Version.org_id,
        Version.app_name,
        Version.name,
        Version.time,
        Version.deleted,
        Event.received_at,
        Event.actor_id,
        Event.action,
        _previous_id().label("previous_id"),
        Event.headers,
        Event.body,
        _archived_before().scalar_subquery().label("archived_before"),
    ).join(Event, Event.id == Version.event_id)


def _archived_before() -> Select[Any]:
    """Before when deliveries were archived (null: never); a page's statement asks it once."""
    return select(func.max(JournalArchive.before))


def _not_hidden_by_app_delete() -> Any:
    """A version of an app's object older than the app's newest App Delete is hidden with the
    state it describes (an App's own versions never are)."""
    return or_(Version.kind == "App", App.purged_at.is_(None), Version.time >= App.purged_at)


def _with_app(stmt: Select[Any]) -> Select[Any]:
    return stmt.outerjoin(App, and_(App.org_id == Version.org_id, App.name == Version.app_name))


def bodies(conn: Connection, event_ids: Sequence[str]) -> dict[str, tuple[dict[str, str], str]]:
    if not event_ids:
        return {}
    stmt = select(Event.id, Event.headers, Event.body).where(Event.id.in_(bindparam("ids", expanding=True)))
    return {row.id: (row.headers, row.body) for row in conn.execute(stmt, {"ids": list(set(event_ids))})}


def _views(
    conn: Connection, versions: Sequence[_Version], found: dict[str, tuple[dict[str, str], str]], *, reveal: bool
) -> list[list[dict[str, Any]]]:
    """Each version's changes against the one before it. ``found``: the journaled events at hand
    (the page's own); the versions before them that are not are read in one query (a page of one
    object holds most of its own versions before: only the last row's is missing)."""
    found = {**found, **bodies(conn, [v.previous_id for v in versions if v.previous_id and v.previous_id not in found])}
    cached: dict[str, dict[str, Any] | None] = {}

    def view(kind: str, event_id: str | None) -> dict[str, Any] | None:
        if event_id is None or event_id not in found:
            return None
        if event_id not in cached:
            headers, body = found[event_id]
            snapshot = snapshot_of(kind, headers, body)
            cached[event_id] = (
                None
                if snapshot is None
                else render(kind, snapshot, time=UNCOMPARED_TIME, event_id=event_id, deleted_at=None).model_dump(
                    mode="json"
                )
            )
        return cached[event_id]

    return [changes(view(v.kind, v.previous_id), view(v.kind, v.event_id), reveal=reveal) for v in versions]


PAGE_KEYS = (Version.time, Version.event_id)


def _page_of_versions(
    session: Session, paged: Select[Any], parameters: dict[str, Any], window: Window, *, reveal: bool, feed: bool
) -> HistoryPage[Any]:
    """A page of ``paged`` (a page statement of ``_versions_select`` over ``PAGE_KEYS``)."""
    conn = session.connection()
    read = conn.execute(paged, parameters).all()
    found, next_cursor = page_of(read, len(PAGE_KEYS), window.limit)
    rows = [_Version(*row[: len(_VERSION_FIELDS)]) for row in found]  # the select's first columns, in order
    events = {row.event_id: (row.headers, row.body) for row in read}  # the row past the page's end too
    items = []
    for version, changed in zip(rows, _views(conn, rows, events, reveal=reveal), strict=True):
        fields = {
            "event_id": version.event_id,
            "time": version.time,
            "received_at": version.received_at,
            "actor_id": version.actor_id,
            "action": version.action,
            "deleted": version.deleted,
            "changes": changed,
        }
        if feed:
            items.append(
                ChangeOut(
                    kind=version.kind,
                    org_id=version.org_id,
                    app_name=version.app_name or None,
                    name=version.name,
                    **fields,
                )
            )
        else:
            items.append(VersionOut(**fields))
    # the page's rows say it; an empty page asks
    archived_before = found[0].archived_before if found else session.scalar(_archived_before())
    return HistoryPage(items=items, next_cursor=next_cursor, archived_before=archived_before)


def history(
    session: Session,
    kind: str,
    app_name: str,
    name: str,
    window: Window,
    *,
    org_id: str | None,
    reveal: bool = False,
) -> HistoryPage[VersionOut]:
    """One object's versions, newest first. The app is found deleted or not (its history stays);
    versions hidden by an App Delete are left out unless ``include_deleted``."""
    app = resolve_app(session, app_name, org_id, include_deleted=True)
    the_object = {"kind": kind, "app_name": app.name, "name": name, "org_id": app.org_id}

    def must_have_history() -> None:
        """A 404 for an object of which no version was ever received."""
        if session.connection().execute(_any_version(), the_object).first() is not None:
            return
        if kind == "App":
            raise NotFound(f"app {name!r} has no history")
        what = {"Env": "env", "VariableGroup": "variable group", "AppOrchestration": "orchestration"}[kind]
        raise NotFound(f"{what} {name!r} of app {app_name!r} has no history")

    if window.cursor is not None:  # a page past a cursor may be empty: the object's existence decides first
        must_have_history()
    paged = _object_page(window.include_deleted, after=window.cursor is not None)
    parameters = {**the_object, **page_parameters(PAGE_KEYS, limit=window.limit, cursor=window.cursor)}
    page = _page_of_versions(session, paged, parameters, window, reveal=reveal, feed=False)
    if window.cursor is None and not page.items:  # a first page with versions says the object has some
        must_have_history()
    return page


def _of_object() -> Any:
    """The versions of one object, named by the parameters ``kind``, ``app_name``, ``name``, ``org_id``."""
    return and_(*(getattr(Version, column) == bindparam(column) for column in ("kind", "app_name", "name", "org_id")))


@cache
def _any_version() -> Select[Any]:
    """One version of the object (``_of_object``), if it ever had one."""
    return select(Version.event_id).where(_of_object()).limit(1)


@cache
def _object_page(include_deleted: bool, *, after: bool) -> Select[Any]:
    """The page statement of one object's versions, newest first, built once per shape: the
    object (``_of_object``), the cursor and the limit are parameters."""
    stmt = _with_app(_versions_select().where(_of_object()))
    if not include_deleted:
        stmt = stmt.where(_not_hidden_by_app_delete())
    return bound_page_statement(stmt, PAGE_KEYS, after=after, descending=True)


def change_feed(
    session: Session,
    window: Window,
    *,
    since: datetime | None,
    until: datetime | None,
    app: str | None,
    kind: str | None,
    org_id: str | None,
    reveal: bool = False,
) -> HistoryPage[ChangeOut]:
    """Every version of the inventory's objects in ``(time, event_id)`` order, oldest first; the
    cursor is a position in that order, so it stays valid while events arrive."""
    stmt = _with_app(_versions_select().where(Version.kind.in_(HISTORY_KINDS)))
    if since is not None:
        stmt = stmt.where(Version.time >= since)
    if until is not None:
        stmt = stmt.where(Version.time < until)
    if app is not None:
        stmt = stmt.where(Version.app_name == app)
    if kind is not None:
        stmt = stmt.where(Version.kind == kind)
    if org_id is not None:
        stmt = stmt.where(Version.org_id == org_id)
    if not window.include_deleted:
        stmt = stmt.where(_not_hidden_by_app_delete())
    paged = page_statement(stmt, PAGE_KEYS, limit=window.limit, cursor=window.cursor)
    return _page_of_versions(session, paged, {}, window, reveal=reveal, feed=True)
