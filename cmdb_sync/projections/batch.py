"""The one projector: any number of events, written set-based, each with the status that applying
them one by one in their order would have given.

Per kind: the versions held for the batch's objects are read in one query; walking the events in
order against them decides every status (an event applies only when its ``(time, id)`` is greater
than everything before it, held or in the batch); only the newest snapshot of each object is
written, in one multi-row ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` whose guard is the same
rule, so a concurrent writer in another process can never be overwritten by an older snapshot;
children are replaced with one ``DELETE`` and one multi-row ``INSERT`` per table.

If another process wrote a newer version between the read and the write, the guard refuses the
write and every event of that object in the batch is stale, which is what one-by-one processing
would have said had the other process's events come first.

Statements are built once per table and dialect; the ORM is not on this path.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Table, bindparam, or_, update
from sqlalchemy.exc import InterfaceError, OperationalError

from cmdb_sync.db import describe_error, is_data_error
from cmdb_sync.errors import ProjectionError
from cmdb_sync.events import MAX_NAME_CHARS, Envelope
from cmdb_sync.models import App, Version, parent_column
from cmdb_sync.projections import PROJECTIONS, REGISTRY, bulk
from cmdb_sync.projections.common import CHILDREN, Children, Projection, Snapshot
from cmdb_sync.projections.deferral import Deferral
from cmdb_sync.status import Status

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 2000
VERSION_COLUMNS = ("version_at", "version_id", "deleted_at")

Outcome = tuple[Status, str | None]


@dataclass(frozen=True)
class _Item:
    index: int
    envelope: Envelope
    snapshot: Snapshot
    key: tuple[Any, ...]

    @property
    def version(self) -> tuple[datetime, str]:
        return (self.envelope.time, self.envelope.id)  # type: ignore[return-value]


def snapshot_of(envelope: Envelope) -> Snapshot | Outcome:
    """The event's snapshot, or the outcome that says why it has none (unsupported, failed)."""
    if envelope.time is None:
        return Status.FAILED, envelope.time_error
    projection = REGISTRY.get(envelope.kind)
    if projection is None or envelope.action not in projection.actions:
        return Status.UNSUPPORTED, None
    try:
        snapshot = projection.snapshot(envelope)
        _check_names(projection, snapshot)
        return snapshot
    except ProjectionError as exc:
        return Status.FAILED, str(exc)[:MAX_ERROR_CHARS]
    except Exception as exc:  # a projection bug must not lose the event: it is kept as failed
        log.exception("projection of event %s failed", envelope.id)
        return Status.FAILED, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]


def _check_names(projection: Projection, snapshot: Snapshot) -> None:
    """The names that identify an object (and its app) fit an index entry on every database: a
    longer one fails its event, the same way everywhere (README, "Receiving")."""
    named = [(column, snapshot.values[column]) for column in projection.identity]
    if snapshot.app is not None:
        named.append(("app", snapshot.app[1]))
    for column, value in named:
        if isinstance(value, str) and len(value) > MAX_NAME_CHARS:
            msg = f"{column}: longer than {MAX_NAME_CHARS} characters"
            raise ProjectionError(msg)


@dataclass(frozen=True)
class Prepared:
    """A batch's snapshots, made without the database: the items to write, by kind, and the
    outcome of each event that has none (unsupported, failed), by position."""

    outcomes: list[Outcome | None]
    by_kind: dict[str, list[_Item]]

    def only(self, positions: Sequence[int]) -> Prepared:
        """The events at ``positions`` alone, in that order (numbered again from 0)."""
        renumbered = {position: new for new, position in enumerate(positions)}
        by_kind = {}
        for kind, items in self.by_kind.items():
            kept = [replace(item, index=renumbered[item.index]) for item in items if item.index in renumbered]
            if kept:
                by_kind[kind] = kept
        return Prepared([self.outcomes[position] for position in positions], by_kind)


Held = dict[str, dict[tuple[Any, ...], tuple[Any, Any]]]  # the versions held, by kind and key


def prepare(envelopes: Sequence[Envelope]) -> Prepared:
    outcomes: list[Outcome | None] = [None] * len(envelopes)
    by_kind: dict[str, list[_Item]] = defaultdict(list)
    for index, envelope in enumerate(envelopes):
        made = snapshot_of(envelope)
        if isinstance(made, tuple):
            outcomes[index] = made
            continue
        projection = REGISTRY[envelope.kind]
        key = tuple(made.values[column] for column in projection.identity)
        by_kind[envelope.kind].append(_Item(index, envelope, made, key))
    return Prepared(outcomes, dict(by_kind))


def look_up(conn: Connection, prepared: Prepared) -> Callable[[], Held]:
    """Ask for the versions held of the batch's objects (one query a kind, planned by key); what
    it returns gives them. In a pipeline every query goes with the next round trip, whatever asks
    for it: a batch of several kinds waits for them once, and a writer that asks before its own
    lookup (the journal's) waits once for both."""
    bulk.plan_by_key(conn)
    later = {
        kind: bulk.held_versions(conn, REGISTRY[kind].table, REGISTRY[kind].identity, list({i.key for i in items}))
        for kind, items in prepared.by_kind.items()
    }
    return lambda: {kind: rows() for kind, rows in later.items()}


def write(conn: Connection, prepared: Prepared, held: Held, deferral: Deferral | None = None) -> list[Outcome]:
    """Write the prepared events, in their order, against the versions ``held`` (``look_up``'s),
    leaving to later what ``deferral`` says a later event overwrites."""
    outcomes = list(prepared.outcomes)
    by_kind = dict(prepared.by_kind)
    # Every app the batch names, its App events' own included, is made to exist first, in one
    # statement in key order: the apps another writer may be creating at the same moment are then
    # locked in the same order by both (an App event's new app, then another batch's implied app:
    # two import lanes deadlocked on each other that way).
    named = {item.snapshot.app for items in by_kind.values() for item in items if item.snapshot.app}
    named.update((item.snapshot.values["org_id"], item.snapshot.values["name"]) for item in by_kind.get("App", ()))
    _ensure_apps(conn, sorted(named))
    if "App" in by_kind:
        _write_kind(conn, REGISTRY["App"], by_kind.pop("App"), outcomes, held["App"], deferral)
    for projection in PROJECTIONS:
        if projection.kind in by_kind:
            _write_kind(conn, projection, by_kind[projection.kind], outcomes, held[projection.kind], deferral)
    return outcomes  # type: ignore[return-value]


def project(conn: Connection, envelopes: Sequence[Envelope], deferral: Deferral | None = None) -> list[Outcome]:
    """Project the events, in their order, on ``conn`` (inside the caller's transaction)."""
    prepared = prepare(envelopes)
    return write(conn, prepared, look_up(conn, prepared)(), deferral)


def project_isolated(
    conn: Connection,
    envelopes: Sequence[Envelope],
    looked_up: tuple[Prepared, Held] | None = None,
    deferral: Deferral | None = None,
) -> list[Outcome]:
    """``project``, but an error caused by one event's data fails that event alone: the batch is
    tried in a savepoint, and after an error each event is tried in its own. An outage (the
    connection lost, the database down) is nobody's data: it propagates. ``looked_up``: the
    events already prepared and their held versions read."""
    saved = deferral.saved() if deferral is not None else None
    try:
        with conn.begin_nested():
            return write(conn, *looked_up, deferral) if looked_up else project(conn, envelopes, deferral)
    except Exception as exc:
        if _is_outage(exc):
            raise
        if deferral is not None and saved is not None:
            deferral.restore(saved)  # the savepoint rolled back what the batch deferred or settled
        if len(envelopes) == 1:
            return [_refused(envelopes[0], exc)]
        log.info("a batch of %d events failed as a whole; projecting them one by one", len(envelopes))
    return [_project_one(conn, envelope, deferral) for envelope in envelopes]


def _project_one(conn: Connection, envelope: Envelope, deferral: Deferral | None) -> Outcome:
    saved = deferral.saved() if deferral is not None else None
    try:
        with conn.begin_nested():
            return project(conn, [envelope], deferral)[0]
    except Exception as exc:
        if _is_outage(exc):
            raise
        if deferral is not None and saved is not None:
            deferral.restore(saved)  # the savepoint rolled back what it deferred or settled
        return _refused(envelope, exc)


def _is_outage(exc: Exception) -> bool:
    return isinstance(exc, OperationalError | InterfaceError) and not is_data_error(exc)


def _refused(envelope: Envelope, exc: Exception) -> Outcome:
    detail = describe_error(exc)
    log.info("event %s refused by the database: %s", envelope.id, detail)
    return Status.FAILED, f"refused by the database: {detail}"[:MAX_ERROR_CHARS]


# --- one kind ------------------------------------------------------------------------------------


def _write_kind(
    conn: Connection,
    projection: Projection,
    items: list[_Item],
    outcomes: list[Any],
    held: dict[Any, Any],
    deferral: Deferral | None,
) -> None:
    winners: dict[tuple[Any, ...], _Item] = {}
    for item in items:  # in arrival order: each against everything before it
        current = held.get(item.key)
        if deferral is not None:
            current = deferral.held(projection.kind, item.key, current)
        if current is None or current[0] is None or item.version > current:
            outcomes[item.index] = (Status.APPLIED, None)
            held[item.key] = item.version
            winners[item.key] = item
        else:
            outcomes[item.index] = (Status.STALE, None)
    purges = _purges(items)
    bulk.insert_ignoring_conflicts(conn, Version.__table__, ("event_id",), [_version(projection, i) for i in items])
    if deferral is not None:
        winners = deferral.defer(projection.kind, winners)
    if winners:
        written = _upsert(conn, projection, list(winners.values()))
        if deferral is not None:
            deferral.wrote(projection.kind, written)
        for key in winners.keys() - written.keys():  # a newer version came from another process
            for item in items:
                if item.key == key:
                    outcomes[item.index] = (Status.STALE, None)
        replaced = [(written[key], winners[key].snapshot) for key in written]
        _replace_children(conn, projection, replaced)
    if purges:
        conn.execute(_purge_statement(), purges)


def _version(projection: Projection, item: _Item) -> dict[str, Any]:
    """Every snapshot, applied or stale, is a version of its object (its history; as-of reads)."""
    org_id, app_name, name = version_key(projection, item.snapshot)
    envelope = item.envelope
    return {
        "event_id": envelope.id,
        "kind": projection.kind,
        "org_id": org_id,
        "app_name": app_name,
        "name": name,
        "time": envelope.time,
        "deleted": envelope.action == "Delete",
    }


def version_key(projection: Projection, snapshot: Snapshot) -> tuple[str, str, str]:
    """``(org_id, app_name, name)`` of a snapshot's object, as the versions table keys it."""
    values = snapshot.values
    if projection.kind == "App":
        return values["org_id"], values["name"], values["name"]
    rest = [str(values[column]) for column in projection.identity if column not in ("org_id", "app_name")]
    app_name = snapshot.app[1] if snapshot.app else ""  # the app the event implies, as the projection does
    return values["org_id"], app_name, "/".join(rest)


def _purges(items: list[_Item]) -> list[dict[str, Any]]:
    """An App Delete, stale or not, makes its app remember the newest delete time."""
    newest: dict[tuple[str, str], datetime] = {}
    for item in items:
        if item.snapshot.purges is not None:
            app = (item.snapshot.values["org_id"], item.snapshot.values["name"])
            newest[app] = max(newest.get(app, item.snapshot.purges), item.snapshot.purges)
    return [{"o": org, "n": name, "t": time} for (org, name), time in sorted(newest.items())]


def _upsert(conn: Connection, projection: Projection, winners: list[_Item]) -> dict[tuple[Any, ...], int]:
    """Write each object's newest snapshot under the guard; the ids of the rows written, by key."""
    rows = []
    for item in winners:
        envelope = item.envelope
        rows.append(
            {
                **item.snapshot.values,
                **item.snapshot.insert_only,
                "version_at": envelope.time,
                "version_id": envelope.id,
                "deleted_at": envelope.time if envelope.action == "Delete" else None,
            }
        )
    insert_only = tuple(winners[0].snapshot.insert_only)
    return bulk.upsert(conn, projection.table, projection.identity, rows, insert_only)


def _replace_children(conn: Connection, projection: Projection, replaced: list[tuple[int, Snapshot]]) -> None:
    """Children follow the snapshot: what the rewritten rows had goes (their own children with
    them), what the snapshots hold comes in, in order. Every rewritten row's children are
    replaced, even one that was not there when the batch read the held versions: another process
    may have created it since, children included, and this write has just overwritten it."""
    if not projection.children:
        return
    table = projection.table
    row_ids = [row_id for row_id, _ in replaced]
    by_table = _children_by_table([(row_id, snapshot.children) for row_id, snapshot in replaced])
    for child in projection.children:
        column = parent_column(child, table)
        if column is None:  # a grandchild goes with its parent, and comes in with it
            continue
        rows, nested = _child_rows(by_table.get(child, []), column)
        ids = bulk.replace_children(conn, child, column, row_ids, rows, key=(column, "position") if nested else ())
        if nested:
            _insert_children(
                conn, [(ids[(parent_id, position)], children) for parent_id, position, children in nested], child
            )


Entry = tuple[int, int, dict[str, Any]]  # parent id, position, row


def _children_by_table(parents: list[tuple[int, Sequence[Children]]]) -> dict[Table, list[Entry]]:
    by_table: dict[Table, list[Entry]] = defaultdict(list)
    for parent_id, children in parents:
        for group in children:
            for position, row in enumerate(group.rows):
                by_table[group.table].append((parent_id, position, row))
    return by_table


def _child_rows(entries: list[Entry], column: str) -> tuple[list[dict[str, Any]], list[tuple[int, int, Any]]]:
    """The rows to insert (each with its parent's id and position), and the children nested in them."""
    rows = []
    for parent_id, position, row in entries:  # a copy, then the nested rows out: cheaper than filtering
        out = {column: parent_id, "position": position, **row}
        out.pop(CHILDREN, None)
        rows.append(out)
    nested = [(parent_id, position, row[CHILDREN]) for parent_id, position, row in entries if row.get(CHILDREN)]
    return rows, nested


def _insert_children(conn: Connection, parents: list[tuple[int, Sequence[Children]]], parent_table: Table) -> None:
    """Insert the children of new rows, one multi-row INSERT per table, then theirs."""
    for table, entries in _children_by_table(parents).items():
        column = parent_column(table, parent_table)
        rows, nested = _child_rows(entries, column)  # type: ignore[arg-type]
        ids = bulk.insert_rows(conn, table, rows, key=(column, "position") if nested else ())  # type: ignore[operator]
        if nested:
            _insert_children(
                conn, [(ids[(parent_id, position)], children) for parent_id, position, children in nested], table
            )


def _ensure_apps(conn: Connection, apps: list[tuple[str, str]]) -> None:
    """An event for an object of an unknown app creates the app, with no version of its own."""
    rows = [{"org_id": org_id, "name": name} for org_id, name in apps]
    bulk.insert_ignoring_conflicts(conn, App.__table__, ("org_id", "name"), rows, mostly_held=True)


# --- statements, built once ----------------------------------------------------------------------


@cache
def _purge_statement() -> Any:
    apps = App.__table__
    return (
        update(apps)
        .where(apps.c.org_id == bindparam("o"), apps.c.name == bindparam("n"))
        .where(or_(apps.c.purged_at.is_(None), apps.c.purged_at < bindparam("t", type_=apps.c.purged_at.type)))
        .values(purged_at=bindparam("t", type_=apps.c.purged_at.type))
    )
