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

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from cmdb_sync.db import keyset_batches, retrying, write_lock
from cmdb_sync.errors import BadDelivery
from cmdb_sync.events import parse_envelope
from cmdb_sync.ingest import engine_of, record_statuses
from cmdb_sync.models import Event, RebuildRun, Version
from cmdb_sync.progress import Reporter
from cmdb_sync.projections import projection_tables
from cmdb_sync.projections.batch import Outcome, project_isolated
from cmdb_sync.status import Status
from cmdb_sync.times import iso_utc, now_utc

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


def _batches(
    session_factory: sessionmaker[Session], selection: Selection, batch_size: int, run: RebuildRun | None = None
) -> Iterator[list[Any]]:
    """The selected events in ``(time, id)`` order, one batch at a time, past where ``run`` stands.
    Events whose time could not be read (journaled as failed) come first, by id: they have no
    place in time."""
    columns = select(Event.id, Event.time, Event.headers, Event.body)
    resumed_in_time = run is not None and run.timed_after_id is not None
    if not resumed_in_time:
        untimed = selection.where(columns.where(Event.time.is_(None)))
        after = [run.untimed_after] if run is not None and run.untimed_after is not None else None
        yield from keyset_batches(session_factory, untimed, [Event.id], batch_size, after=after)
    timed = selection.where(columns.where(Event.time.is_not(None)))
    after = [run.timed_after_time, run.timed_after_id] if resumed_in_time else None  # type: ignore[union-attr]
    yield from keyset_batches(session_factory, timed, [Event.time, Event.id], batch_size, after=after)


def unindexed_history(session_factory: sessionmaker[Session]) -> int:
    """How many projected events a database holds without any version: a journal received before
    the versions index existed (migration 0005), which a rebuild indexes."""
    with session_factory() as session:
        if session.scalar(select(Version.event_id).limit(1)) is not None:
            return 0
        projected = select(func.count()).select_from(Event).where(Event.status.in_([Status.APPLIED, Status.STALE]))
        return session.scalar(projected) or 0


def replay(
    session_factory: sessionmaker[Session],
    selection: Selection,
    reporter: Reporter,
    *,
    rebuild: bool = False,
    restart: bool = False,
    batch_size: int | None = None,
) -> None:
    """Project the selected events again and record each one's new status in the journal.

    A rebuild records where it stands with every batch; run again after it stopped, it continues
    from there (``restart``: it starts over)."""
    run = _rebuild_run(session_factory, reporter, restart=restart) if rebuild else None
    reporter.set_total(count(session_factory, selection) - (run.done if run is not None else 0))
    for batch in _batches(session_factory, selection, batch_size or BATCH_SIZE, run):
        for status in _replay_batch(session_factory, batch, run_id=run.id if run is not None else None):
            reporter.advance(status)
    if run is not None:
        _finish_run(session_factory, run.id)


def _rebuild_run(session_factory: sessionmaker[Session], reporter: Reporter, *, restart: bool) -> RebuildRun:
    """The rebuild to continue, or a new one: every projection emptied and the run begun in one
    transaction, so no rebuild can stand on tables another one half filled."""
    with session_factory() as session:
        unfinished = session.scalars(
            select(RebuildRun).where(RebuildRun.finished_at.is_(None)).order_by(RebuildRun.id.desc()).limit(1)
        ).first()
        if unfinished is not None and not restart:
            session.expunge(unfinished)
            reporter.note(
                f"continuing the rebuild begun at {iso_utc(unfinished.started_at)}: "
                f"{unfinished.done} events were replayed (--restart starts over)"
            )
            return unfinished

    def begin() -> RebuildRun:
        with session_factory() as session, session.begin():
            for table in (*projection_tables(), Version.__table__):
                session.execute(delete(table))
            session.execute(delete(RebuildRun).where(RebuildRun.finished_at.is_(None)))
            run = RebuildRun(started_at=now_utc(), done=0)
            session.add(run)
            session.flush()
            session.expunge(run)
            return run

    return retrying(begin)


def _finish_run(session_factory: sessionmaker[Session], run_id: int) -> None:
    def finish() -> None:
        with session_factory() as session, session.begin():
            session.execute(update(RebuildRun).where(RebuildRun.id == run_id).values(finished_at=now_utc()))

    retrying(finish)


def _replay_batch(
    session_factory: sessionmaker[Session], batch: list[Any], *, run_id: int | None = None
) -> list[Status]:
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
            if run_id is not None:  # where the rebuild stands, committed with what it replayed
                conn.execute(_position_statement(batch[-1].time is None), _position(run_id, batch))

    retrying(write)
    return [outcomes[event.id][0] for event in batch]


def _position(run_id: int, batch: list[Any]) -> dict[str, Any]:
    last = batch[-1]
    return {"run": run_id, "last_time": last.time, "last_id": last.id, "n": len(batch)}


def _position_statement(untimed: bool) -> Any:
    table = RebuildRun.__table__
    values: dict[str, Any] = {"done": table.c.done + bindparam("n")}
    if untimed:
        values["untimed_after"] = bindparam("last_id")
    else:
        values["timed_after_time"] = bindparam("last_time", type_=table.c.timed_after_time.type)
        values["timed_after_id"] = bindparam("last_id")
    return update(table).where(table.c.id == bindparam("run")).values(**values)
