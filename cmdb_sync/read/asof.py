"""The inventory as it was at a moment: ``as_of=T`` answers what a database that had received only
the events with ``time <= T`` would answer now, under the same rules (the last writer by
``(time, id)``, tombstones, an App Delete hiding its app's older objects, an app implied by any
event of its objects).

Each object's version at ``T`` is its newest version with ``time <= T``, found through the
versions index; its state is that version's journaled event projected again and rendered by the
same view code as the current state. Lists walk the versions in the list's own key order, a chunk
at a time, and stop at the page's end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, bindparam, exists, func, select, tuple_
from sqlalchemy.orm import Session, aliased

from cmdb_sync.db import past
from cmdb_sync.errors import Archived, BadRequest, NotFound, the_one
from cmdb_sync.models import App, ChangeOrder, Event, JournalArchive, Version
from cmdb_sync.projections import REGISTRY
from cmdb_sync.read.common import MAX_ORGS_LISTED, Window
from cmdb_sync.read.history import bodies, render, snapshot_of
from cmdb_sync.read.pagination import decode_cursor, encode_cursor
from cmdb_sync.read.views import AppOut, ChangeOrderDetailOut, ChangeOrderOut, DeploymentOut, Page
from cmdb_sync.times import iso_utc, month_text, now_utc, parse_event_time

CHUNK = 200
MAX_CHUNK = 2000
SUCCESS = "SUCCESS"
VERSION_KINDS = tuple(REGISTRY)  # every kind has versions


def parse_as_of(value: str | None) -> datetime | None:
    """``as_of``: ISO-8601 with an offset, or epoch milliseconds; not in the future."""
    if value is None:
        return None
    try:
        at = parse_event_time(int(value) if value.isdigit() else value)
    except (ValueError, TypeError, OverflowError) as exc:
        msg = f"as_of: {exc}" if str(exc) else "as_of: not a time"
        raise BadRequest(msg, field="as_of") from None
    if at > now_utc():
        msg = "as_of: in the future; the inventory's future is not known yet"
        raise BadRequest(msg, field="as_of")
    return at


@dataclass(frozen=True)
class _At:
    """An object's version at the moment: which event, when, whether it was a Delete."""

    event_id: str
    org_id: str
    app_name: str
    name: str
    time: datetime
    deleted: bool


@dataclass(frozen=True)
class AppAt:
    org_id: str
    name: str
    version: _At | None
    purged_at: datetime | None

    @property
    def deleted_at(self) -> datetime | None:
        return self.version.time if self.version is not None and self.version.deleted else None


@dataclass
class AsOf:
    """Reads at one moment, for one request (what it looks up is kept for the request)."""

    session: Session
    at: datetime
    reveal: bool = False
    _apps: dict[tuple[str, str], AppAt] = field(default_factory=dict)
    _deployments: dict[tuple[str, str], list[tuple[Any, ...]]] = field(default_factory=dict)
    _bodies: dict[str, tuple[dict[str, str], str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refused before the newest event an archive took out of the journal: the versions
        before it are gone but for each object's last."""
        last = self._execute(
            select(JournalArchive.before, JournalArchive.horizon, JournalArchive.archived_at)
            .where(JournalArchive.horizon.is_not(None))
            .order_by(JournalArchive.horizon.desc())
            .limit(1)
        ).first()
        if last is not None and self.at < last.horizon:
            msg = (
                f"as_of: the deliveries received before {month_text(last.before)} were archived on "
                f"{last.archived_at:%Y-%m-%d} (cmdb-sync journal archive); the inventory can be read as of "
                f"{iso_utc(last.horizon)} or later (import the archive into another database to read further back)"
            )
            raise Archived(msg, field="as_of", readable_from=iso_utc(last.horizon))

    def _execute(self, stmt: Any) -> Any:
        """A Core statement on the session's connection, the moment bound as ``at`` where it asks
        for it: no ORM entity is read here, and its execution path cost a third of a query."""
        return self.session.connection().execute(stmt, {"at": self.at})

    # --- versions at the moment ---

    def _latest(self, kind: str) -> Select[Any]:
        v, newer = Version, aliased(Version)
        superseded = exists().where(
            newer.kind == v.kind,
            newer.app_name == v.app_name,
            newer.name == v.name,
            newer.org_id == v.org_id,
            newer.time <= bindparam("at", type_=v.time.type),
            tuple_(newer.time, newer.event_id) > tuple_(v.time, v.event_id),
        )
        return select(v.event_id, v.org_id, v.app_name, v.name, v.time, v.deleted).where(
            v.kind == kind, v.time <= bindparam("at", type_=v.time.type), ~superseded
        )

    def _rows(self, stmt: Select[Any]) -> list[_At]:
        return [_At(*row) for row in self._execute(stmt)]

    def one(self, kind: str, org_id: str, app_name: str, name: str) -> _At | None:
        stmt = self._latest(kind).where(Version.org_id == org_id, Version.app_name == app_name, Version.name == name)
        found = self._rows(stmt)
        return found[0] if found else None

    def walk(
        self, kind: str, where: list[Any], keys: list[Any], after: list[Any] | None, *, first: int = CHUNK
    ) -> Iterator[_At]:
        """The versions at the moment of every object of ``kind`` matching ``where``, in ``keys``
        order, a chunk at a time (``_chunks``), each version with its journaled event; a chunk's
        apps and change orders are read together, a query each."""
        stmt = self._latest(kind).where(*where).join(Event, Event.id == Version.event_id)
        for rows in self._chunks(stmt.add_columns(Event.headers, Event.body), keys, after, first=first):
            chunk = [_At(*row[:-2]) for row in rows]
            self._bodies.update((row[0], (row[-2], row[-1])) for row in rows)
            if kind != "App":
                self._prefetch_apps({(version.org_id, version.app_name) for version in chunk if version.app_name})
            if kind == "Env":
                self._prefetch_deployments({(version.org_id, version.app_name) for version in chunk})
            yield from chunk

    def _chunks(self, stmt: Select[Any], keys: list[Any], after: list[Any] | None, *, first: int) -> Iterator[Any]:
        """``stmt``'s rows past ``after`` in ``keys`` order (columns it selects): ``first`` of them at
        once (a page's worth), then chunks four times larger, up to ``MAX_CHUNK``; a list stops
        asking where its page is full."""
        size = first
        while True:
            page = stmt if after is None else stmt.where(past(keys, after))
            rows = self._execute(page.order_by(*keys).limit(size)).all()
            yield rows
            if len(rows) < size:
                return
            after = [getattr(rows[-1], key.key) for key in keys]
            size = min(size * 4, MAX_CHUNK)

    def _prefetch_apps(self, keys: set[tuple[str, str]]) -> None:
        """The apps of versions just read (they exist: a version of theirs implies them), in two queries."""
        missing = sorted(keys - self._apps.keys())
        if not missing:
            return
        of_those = _of_apps(missing)
        latest = {(v.org_id, v.app_name): v for v in self._rows(self._latest("App").where(of_those))}
        purges = self._execute(
            select(Version.org_id, Version.app_name, func.max(Version.time))
            .where(Version.kind == "App", Version.deleted.is_(True), Version.time <= self.at, of_those)
            .group_by(Version.org_id, Version.app_name)
        )
        purged = {(org, app): at for org, app, at in purges}
        for key in missing:
            self._apps[key] = AppAt(key[0], key[1], latest.get(key), purged.get(key))

    def _prefetch_deployments(self, keys: set[tuple[str, str]]) -> None:
        """The successful jobs of the change orders, as they were, of the apps just read: one query."""
        missing = sorted(keys - self._deployments.keys())
        if not missing:
            return
        for key in missing:
            self._deployments[key] = []
        of_those = _of_apps(missing)
        orders = self._rows(self._latest("ChangeOrder").where(of_those))
        self._fetch([version.event_id for version in orders])
        for version in orders:
            snapshot = self.snapshot("ChangeOrder", version)
            if snapshot is None:
                continue
            for group in snapshot.children:
                for position, job in enumerate(group.rows):
                    if job["state"] == SUCCESS:
                        entry = (job, snapshot.values, version.time, position)
                        self._deployments[(version.org_id, version.app_name)].append(entry)

    def _fetch(self, event_ids: list[str]) -> None:
        """The journaled events of these versions, in one query (a list reads a chunk at a time)."""
        missing = [event_id for event_id in event_ids if event_id not in self._bodies]
        self._bodies.update(bodies(self.session.connection(), missing))

    def snapshot(self, kind: str, version: _At) -> Any:
        self._fetch([version.event_id])
        headers, body = self._bodies[version.event_id]
        return snapshot_of(kind, headers, body)

    def state(self, kind: str, version: _At, **extra: Any) -> Any:
        """The object as that version describes it, rendered as the current state is."""
        snapshot = self.snapshot(kind, version)
        if snapshot is None:
            return None
        return render(kind, snapshot, time=version.time, event_id=version.event_id, reveal=self.reveal, **extra)

    # --- apps ---

    def app(self, org_id: str, name: str) -> AppAt:
        """The app at the moment. Every caller holds a version up to the moment that names it, and
        such a version implies the app (an event for an object of an unknown app creates it)."""
        self._prefetch_apps({(org_id, name)})
        return self._apps[(org_id, name)]

    def app_out(self, app: AppAt) -> AppOut:
        if app.version is None:
            return AppOut(
                org_id=app.org_id,
                updated_at=None,
                deleted_at=None,
                name=app.name,
                description=None,
                type=None,
                creator_id=None,
                created_at=None,
            )
        return self.state("App", app.version, deleted_at=app.deleted_at)

    def _existed(self) -> Any:
        """Whether the ``apps`` row's app existed at the moment: a version up to it names the app
        (its own, or one of its objects': an event for an object of an unknown app creates it).
        Every app a version names has its row (the projector makes it first), so the apps found
        by name are the candidates, and each is asked about through the versions index, by kind;
        asking the versions by app name alone read every version there is."""
        return (
            exists()
            .where(
                Version.kind.in_(VERSION_KINDS),
                Version.app_name == App.name,
                Version.org_id == App.org_id,
                Version.time <= bindparam("at", type_=Version.time.type),
            )
            .correlate(App)
        )

    def resolve_app(self, name: str, org_id: str | None, include_deleted: bool) -> AppAt:
        """The one app a path names at the moment: 404 when there was none, 409 listing the orgs."""
        stmt = select(App.org_id).where(App.name == name, self._existed())
        if org_id is not None:
            stmt = stmt.where(App.org_id == org_id)
        orgs = sorted(self._execute(stmt).scalars())
        self._prefetch_apps({(org, name) for org in orgs})
        apps = [self._apps[(org, name)] for org in orgs]
        if not apps:
            msg = f"app {name!r} did not exist at {self.at.isoformat()}"
            raise NotFound(msg)
        if not include_deleted:
            apps = [app for app in apps if app.deleted_at is None]
            if not apps:
                msg = f"app {name!r} stood deleted at {self.at.isoformat()} (include_deleted=true shows it)"
                raise NotFound(msg)
        return the_one(apps[:MAX_ORGS_LISTED], f"app {name!r}", org_id)

    def list_apps(self, window: Window, *, q: str | None, org_id: str | None) -> Page[AppOut]:
        keys = [App.name, App.org_id]
        after = decode_cursor(window.cursor, keys) if window.cursor else None
        where = [self._existed()]
        if org_id is not None:
            where.append(App.org_id == org_id)

        def candidates() -> Iterator[tuple[tuple[str, str], AppOut]]:
            for name, org in self._walk_apps(where, keys, after, first=window.limit + 1):
                if q and q.lower() not in name.lower():
                    continue
                app = self.app(org, name)
                if window.include_deleted or app.deleted_at is None:
                    yield (name, org), self.app_out(app)

        return _page(candidates(), window.limit)

    def _walk_apps(self, where: list[Any], keys: list[Any], after: list[Any] | None, *, first: int) -> Iterator[Any]:
        """The apps (name, org) that existed at the moment, in ``keys`` order, a chunk at a time
        (``_chunks``); a chunk's versions and events are read together, a query each."""
        for chunk in self._chunks(select(*keys).where(*where), keys, after, first=first):
            self._prefetch_apps({(org, name) for name, org in chunk})
            versions = [self._apps[(org, name)].version for name, org in chunk]
            self._fetch([version.event_id for version in versions if version is not None])
            yield from chunk

    # --- objects of an app ---

    def deleted_at(self, version: _At) -> datetime | None:
        """When the object stopped existing, as of the moment (its own Delete, its app's)."""
        if version.deleted:
            return version.time
        app = self.app(version.org_id, version.app_name)
        if app.purged_at is not None and version.time < app.purged_at:
            return app.purged_at
        return app.deleted_at

    def owned(self, kind: str, version: _At, include_deleted: bool) -> Any:
        deleted_at = self.deleted_at(version)
        if deleted_at is not None and not include_deleted:
            return None
        extra: dict[str, Any] = {"deleted_at": deleted_at}
        if kind == "Env":
            extra["deployment"] = self.current_deployment(version.org_id, version.app_name, version.name)
        return self.state(kind, version, **extra)

    def get_owned(
        self, kind: str, what: str, app_name: str, name: str, *, org_id: str | None, include_deleted: bool
    ) -> Any:
        app = self.resolve_app(app_name, org_id, include_deleted)
        version = self.one(kind, app.org_id, app.name, name)
        found = None if version is None else self.owned(kind, version, include_deleted)
        if found is None:
            msg = f"{what} {name!r} of app {app_name!r} did not exist at {self.at.isoformat()}"
            raise NotFound(msg)
        return found

    def list_owned(
        self,
        kind: str,
        window: Window,
        *,
        app_name: str | None,
        org_id: str | None,
        within_app: bool,
        accept: Callable[[Any], bool] = lambda _: True,
    ) -> Page[Any]:
        if within_app:
            app = self.resolve_app(app_name or "", org_id, window.include_deleted)
            where = [Version.org_id == app.org_id, Version.app_name == app.name]
            keys = [Version.name]
        else:
            where = []
            if app_name is not None:
                where.append(Version.app_name == app_name)
            if org_id is not None:
                where.append(Version.org_id == org_id)
            keys = [Version.app_name, Version.name, Version.org_id]
        after = decode_cursor(window.cursor, keys) if window.cursor else None

        def candidates() -> Iterator[tuple[tuple[Any, ...], Any]]:
            for version in self.walk(kind, where, keys, after, first=window.limit + 1):
                item = self.owned(kind, version, window.include_deleted)
                if item is not None and accept(item):
                    yield tuple(getattr(version, key.key) for key in keys), item

        return _page(candidates(), window.limit)

    def list_envs(
        self,
        window: Window,
        *,
        app_name: str | None,
        org_id: str | None,
        labels: list[tuple[str, str]],
        artifact: str | None,
    ) -> Page[Any]:
        """Envs across apps as they were: every label given must match, and the current deployment
        must run an artifact containing ``artifact`` when it is given."""
        accept = all_of(matches_labels(labels), runs_artifact(artifact) if artifact else None)
        return self.list_owned("Env", window, app_name=app_name, org_id=org_id, within_app=False, accept=accept)

    # --- what was deployed ---

    def list_change_orders(
        self, app_name: str, window: Window, *, org_id: str | None, env: str | None, state: str | None
    ) -> Page[ChangeOrderOut]:
        """An app's change orders as they were, newest first (by start, else by version time)."""
        app = self.resolve_app(app_name, org_id, include_deleted=True)
        keys = [ChangeOrder.started_at, ChangeOrder.sn]
        after = decode_cursor(window.cursor, keys) if window.cursor else None
        orders = []
        for version in self.walk(
            "ChangeOrder", [Version.org_id == app.org_id, Version.app_name == app.name], [Version.name], None
        ):
            order = self.state("ChangeOrder", version, deleted_at=None)
            if order is None or (state is not None and order.state != state):
                continue
            if env is not None and not any(job.env_name == env for job in order.jobs):
                continue
            key = (order.started_at or order.updated_at, order.sn)
            if after is None or key < tuple(after):
                orders.append((key, ChangeOrderOut.model_validate(order.model_dump())))
        orders.sort(key=lambda entry: entry[0], reverse=True)
        return _page(iter(orders), window.limit)

    def get_change_order(self, sn: str, *, org_id: str | None) -> ChangeOrderDetailOut:
        stmt = self._latest("ChangeOrder").where(Version.name == sn)
        if org_id is not None:
            stmt = stmt.where(Version.org_id == org_id)
        versions = self._rows(stmt.order_by(Version.org_id).limit(MAX_ORGS_LISTED))
        if not versions:
            msg = f"change order {sn!r} did not exist at {self.at.isoformat()}"
            raise NotFound(msg)
        version = the_one(versions, f"change order {sn!r}", org_id)
        return self.state("ChangeOrder", version, deleted_at=None)

    def current_deployment(self, org_id: str, app_name: str, env_name: str) -> DeploymentOut | None:
        """The env's newest successful change-order job among the change orders as they were."""
        key = (org_id, app_name)
        self._prefetch_deployments({key})
        candidates = [entry for entry in self._deployments[key] if entry[0]["env_name"] == env_name]
        if not candidates:
            return None
        job, order, _, _ = max(candidates, key=_newest_job)
        return DeploymentOut(
            change_order_sn=order["sn"], version=order["version"], artifacts=job["artifacts"], ended_at=job["ended_at"]
        )


def _of_apps(keys: list[tuple[str, str]]) -> Any:
    """Versions of these apps' objects (``(org_id, app_name)`` keys), found by app name through the
    versions index: a row comparison alone is no index condition, and every version of the kind
    was read."""
    names = sorted({name for _, name in keys})
    return and_(Version.app_name.in_(names), tuple_(Version.org_id, Version.app_name).in_(keys))


def _newest_job(entry: tuple[Any, ...]) -> tuple[Any, ...]:
    job, _, written, position = entry
    ended, started = job["ended_at"], job["started_at"]
    return (ended is not None, ended or written, started is not None, started or written, written, position)


def _page(candidates: Iterator[tuple[tuple[Any, ...], Any]], limit: int) -> Page[Any]:
    items, last_key = [], None
    for key, item in candidates:
        if len(items) == limit:
            return Page(items=items, next_cursor=encode_cursor(list(last_key or ())))
        items.append(item)
        last_key = key
    return Page(items=items, next_cursor=None)


def matches_labels(labels: list[tuple[str, str]]) -> Callable[[Any], bool]:
    def accept(env: Any) -> bool:
        held = {(label.name, label.value) for label in env.labels}
        return all(pair in held for pair in labels)

    return accept


def all_of(*conditions: Callable[[Any], bool] | None) -> Callable[[Any], bool]:
    wanted = [condition for condition in conditions if condition is not None]
    return lambda item: all(condition(item) for condition in wanted)


def runs_artifact(text: str) -> Callable[[Any], bool]:
    wanted = text.lower()

    def accept(env: Any) -> bool:
        deployment = env.current_deployment
        return deployment is not None and any(wanted in str(v).lower() for v in deployment.artifacts.values())

    return accept
