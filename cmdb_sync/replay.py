"""Re-apply the journal to the projections: after a fix (``--failed``) or from scratch (``--rebuild``).

The journal is read in ``(time, id)`` order in keyset batches, so memory stays flat whatever its
size. Each batch is one transaction, projected by the same batch projector as deliveries are. It is safe while the server receives deliveries: projections converge whatever the order
in which events are applied, so an event the server applies during a replay and the replay's own
copy of it agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from cmdb_sync.db import keyset_batches, retrying, write_lock
from cmdb_sync.errors import BadDelivery
from cmdb_sync.events import parse_envelope
from cmdb_sync.ingest import engine_of, record_statuses
from cmdb_sync.models import Event, Version
from cmdb_sync.progress import Reporter
from cmdb_sync.projections import projection_tables
from cmdb_sync.projections.batch import Outcome, project_isolated
from cmdb_sync.status import Status

BATCH_SIZE = 2000


@dataclass(frozen=True)
class Selection:
    """Which journaled events a replay takes."""

    failed_only: bool = False
    since: datetime | None = None
    kind: str | None = None

    def where(self, stmt: Any) -> Any:
        if self.failed_only:
            stmt = stmt.where(Event.status == Status.FAILED)
        if self.since is not None:
            stmt = stmt.where(Event.time >= self.since)
        if self.kind is not None:
            stmt = stmt.where(Event.kind == self.kind)
        return stmt


def count(session_factory: sessionmaker[Session], selection: Selection) -> int:
    with session_factory() as session:
        return session.scalar(selection.where(select(func.count()).select_from(Event))) or 0


def _batches(session_factory: sessionmaker[Session], selection: Selection, batch_size: int) -> Iterator[list[Any]]:
    """The selected events in ``(time, id)`` order, one batch at a time. Events whose time could
    not be read (journaled as failed) come first, by id: they have no place in time."""
    columns = select(Event.id, Event.time, Event.headers, Event.body)
    untimed = selection.where(columns.where(Event.time.is_(None)))
    yield from keyset_batches(session_factory, untimed, [Event.id], batch_size)
    timed = selection.where(columns.where(Event.time.is_not(None)))
    yield from keyset_batches(session_factory, timed, [Event.time, Event.id], batch_size)


def unindexed_history(session_factory: sessionmaker[Session]) -> int:
    """How many projected events a database holds without any version: a journal received before
    the versions index existed (migration 0005), which a rebuild indexes."""
    with session_factory() as session:
        if session.scalar(select(Version.event_id).limit(1)) is not None:
            return 0
        projected = select(func.count()).select_from(Event).where(Event.status.in_([Status.APPLIED, Status.STALE]))
        return session.scalar(projected) or 0


def empty_projections(session_factory: sessionmaker[Session]) -> None:
    """Delete every projected row (children first) and every version in one transaction; the
    journal stays, and replaying it writes them again."""

    def empty() -> None:
        with session_factory() as session, session.begin():
            for table in (*projection_tables(), Version.__table__):
                session.execute(delete(table))

    retrying(empty)


def replay(
    session_factory: sessionmaker[Session],
    selection: Selection,
    reporter: Reporter,
    *,
    rebuild: bool = False,
    batch_size: int = BATCH_SIZE,
) -> None:
    """Project the selected events again and record each one's new status in the journal."""
    if rebuild:
        empty_projections(session_factory)
    reporter.set_total(count(session_factory, selection))
    for batch in _batches(session_factory, selection, batch_size):
        for status in _replay_batch(session_factory, batch):
            reporter.advance(status)


def _replay_batch(session_factory: sessionmaker[Session], batch: list[Any]) -> list[Status]:
    outcomes: dict[str, Outcome] = {}
    envelopes = []
    for event in batch:
        try:
            envelope, _ = parse_envelope(event.headers, event.body)
        except BadDelivery as exc:  # journaled by an older version with looser checks
            outcomes[event.id] = (Status.FAILED, str(exc))
        else:
            envelopes.append(envelope)
    engine = engine_of(session_factory)

    def write() -> None:
        with write_lock(engine), engine.begin() as conn:
            for envelope, outcome in zip(envelopes, project_isolated(conn, envelopes), strict=True):
                outcomes[envelope.id] = outcome
            record_statuses(conn, list(outcomes.items()))

    retrying(write)
    return [outcomes[event.id][0] for event in batch]
