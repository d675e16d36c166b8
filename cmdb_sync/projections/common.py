"""What every projection shares: the version guard, the app a child event implies, child replacement."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, UniqueConstraint, delete, insert, or_, tuple_, update
from sqlalchemy.orm import Session

from cmdb_sync.db import upsert
from cmdb_sync.errors import ProjectionError
from cmdb_sync.events import Envelope
from cmdb_sync.models import App, Base
from cmdb_sync.status import Status

SNAPSHOT_ACTIONS = frozenset({"Create", "Update", "Delete"})


@dataclass(frozen=True)
class Listed:
    """What a kind that backfill lists from the AppStack OpenAPI says of a held row: the parts of
    its key that name it in a backfill event id, and the least attributes a Delete of it carries
    when its last snapshot is gone."""

    key: Callable[[Any], tuple[str, ...]]
    tombstone: Callable[[Any], dict[str, Any]]


@dataclass(frozen=True)
class Projection:
    """Everything the rest of cmdb-sync needs to know of one object kind, kept with its module.

    ``kind`` is the ``objectKind``; ``model`` its table's ORM class and ``children`` the tables that
    follow each snapshot (parents before their children); ``app_path`` where the attributes name the
    app (empty when only the header does); ``default_action`` what an archived bare body without an
    action is taken to say; ``listed`` is set for the kinds backfill lists."""

    kind: str
    model: type[Base]
    apply: Callable[[Session, Envelope], Status]
    actions: frozenset[str] = SNAPSHOT_ACTIONS
    children: tuple[Table, ...] = ()
    app_path: tuple[str, ...] = ()
    default_action: str = "Update"
    listed: Listed | None = field(default=None)

    @property
    def table(self) -> Table:
        return self.model.__table__  # type: ignore[return-value]

    @property
    def tables(self) -> tuple[Table, ...]:
        return (self.table, *self.children)

    @property
    def identity(self) -> tuple[str, ...]:
        """The columns that name one object (the contract's identity): its table's unique constraint."""
        unique = next(c for c in self.table.constraints if isinstance(c, UniqueConstraint))
        return tuple(column.name for column in unique.columns)

    def app_of(self, attributes: Any) -> str | None:
        """The app the attributes name, if they name one."""
        value = attributes
        for key in self.app_path:
            value = value.get(key) if isinstance(value, dict) else None
        return value if self.app_path and isinstance(value, str) and value else None


def require_org(envelope: Envelope) -> str:
    if not envelope.org_id:
        msg = "orgId: required to identify the object"
        raise ProjectionError(msg)
    return envelope.org_id


def owning_app(session: Session, envelope: Envelope, name: str | None, where: str) -> tuple[str, str]:
    """The org and app an event's object belongs to (``where`` says where the name should have
    been); the app is created, with no version, when it is not known yet."""
    org_id = require_org(envelope)
    if not name:
        msg = f"{where}: required to identify the app"
        raise ProjectionError(msg)
    ensure_app(session, org_id, name)
    return org_id, name


def applied_if(row_id: int | None) -> Status:
    """The status of a snapshot that ``apply_snapshot`` wrote (a row id) or found stale (None)."""
    return Status.APPLIED if row_id is not None else Status.STALE


def newer_than_held(table: Table) -> Callable[[Any], Any]:
    """The version guard: overwrite only when the proposed ``(time, id)`` is greater than the held one."""

    def guard(excluded: Any) -> Any:
        return or_(
            table.c.version_at.is_(None),
            tuple_(table.c.version_at, table.c.version_id) < tuple_(excluded.version_at, excluded.version_id),
        )

    return guard


def apply_snapshot(
    session: Session,
    table: Table,
    envelope: Envelope,
    identity: Mapping[str, Any],
    fields: Mapping[str, Any],
    *,
    insert_only: Mapping[str, Any] | None = None,
) -> int | None:
    """Upsert a full snapshot of one object if it is newer than what is held.

    A ``Delete`` is a snapshot too, with ``deleted_at`` set to the event time; any other action
    clears it. Returns the row id when the snapshot applied, None when it was stale.
    """
    values = {
        **identity,
        **fields,
        "version_at": envelope.time,
        "version_id": envelope.id,
        "deleted_at": envelope.time if envelope.action == "Delete" else None,
    }
    update_columns = [name for name in values if name not in identity]
    return upsert(
        session,
        table,
        {**values, **(insert_only or {})},
        conflict=identity.keys(),
        update=update_columns,
        where=newer_than_held(table),
        returning=table.c.id,
    )


def ensure_app(session: Session, org_id: str, app_name: str) -> None:
    """An event for an object of an unknown app creates the app, with no version of its own."""
    upsert(session, App.__table__, {"org_id": org_id, "name": app_name}, conflict=("org_id", "name"))


def record_app_delete(session: Session, org_id: str, app_name: str, time: Any) -> None:
    """Remember the newest App Delete ever received, even a stale one: it hides older children."""
    apps = App.__table__
    session.execute(
        update(apps)
        .where(apps.c.org_id == org_id, apps.c.name == app_name)
        .where(or_(apps.c.purged_at.is_(None), apps.c.purged_at < time))
        .values(purged_at=time)
    )


def replace_children(
    session: Session, table: Table, parent_column: str, parent_id: int, rows: Sequence[Mapping[str, Any]]
) -> list[int]:
    """Children follow the snapshot: drop what the parent had (and, by cascade, their own children),
    insert what it has now, in order. Returns the new rows' ids, in the order given."""
    session.execute(delete(table).where(table.c[parent_column] == parent_id))
    if not rows:
        return []
    result = session.execute(
        insert(table).returning(table.c.id, sort_by_parameter_order=True),
        [{parent_column: parent_id, "position": position, **row} for position, row in enumerate(rows)],
    )
    return list(result.scalars())


def label_rows(labels: Sequence[Any] | None) -> list[dict[str, Any]]:
    return [
        {
            "namespace": label.namespace,
            "name": label.name,
            "value": label.value,
            "display_name": label.display_name,
            "display_value": label.display_value,
        }
        for label in labels or ()
    ]
