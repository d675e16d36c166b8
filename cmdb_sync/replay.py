"""Re-apply the journal to the projections: after a fix (``--failed``) or from scratch (``--rebuild``).

The journal is read in ``(time, id)`` order in keyset batches, so memory stays flat whatever its
size. Each batch is one transaction, projected by the same batch projector as deliveries are. It is safe while the server receives deliveries: projections converge whatever the order
in which events are applied, so an event the server applies during a replay and the replay's own
copy of it agree.
"""

from __future__ import annotations

from collections.abc import Container, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Table, bindparam, delete, func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from cmdb_sync.db import (
    BRIEF_LOCK_WAIT,
    giving_way,
    keyset_batches,
    make_engine,
    make_session_factory,
    retrying,
    write_lock,
)
from cmdb_sync.errors import BadDelivery
from cmdb_sync.events import parse_envelope
from cmdb_sync.ingest import engine_of, record_statuses
from cmdb_sync.models import Base, Event, RebuildRun, Version
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
    received_before: datetime | None = None

    def where(self, stmt: Any) -> Any:
        if self.received_before is not None:
            stmt = stmt.where(Event.received_at < self.received_before)
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
    columns = select(Event.id, Event.time, Event.headers, Event.body, Event.received_at)
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
    if rebuild and engine_of(session_factory).dialect.name == "postgresql":
        _rebuild_beside(session_factory, reporter, restart=restart, batch_size=batch_size or BATCH_SIZE)
        return
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
    unfinished = None if restart else _unfinished_run(session_factory, reporter)
    if unfinished is not None:
        return unfinished

    def begin() -> RebuildRun:
        with engine_of(session_factory).begin() as conn:
            for table in rebuilt_tables():
                conn.execute(delete(table))
            return _begin_run(conn)

    return retrying(begin)


def _begin_run(conn: Any) -> RebuildRun:
    """A new rebuild, in the transaction that prepares its tables; one left unfinished is dropped."""
    conn.execute(delete(RebuildRun).where(RebuildRun.finished_at.is_(None)))
    started_at = now_utc()
    run_id = conn.execute(
        RebuildRun.__table__.insert().values(started_at=started_at, done=0).returning(RebuildRun.id)
    ).scalar_one()
    return RebuildRun(id=run_id, started_at=started_at, done=0)


def _finished(run_id: int) -> Any:
    return update(RebuildRun).where(RebuildRun.id == run_id).values(finished_at=now_utc())


def _unfinished_run(
    session_factory: sessionmaker[Session], reporter: Reporter, *, schema: str | None = None
) -> RebuildRun | None:
    """The newest rebuild that did not finish (and whose ``schema`` is still there), said aloud."""
    with session_factory() as session:
        unfinished = session.scalars(
            select(RebuildRun).where(RebuildRun.finished_at.is_(None)).order_by(RebuildRun.id.desc()).limit(1)
        ).first()
        if unfinished is None:
            return None
        if schema is not None:
            there = text("SELECT count(*) FROM information_schema.schemata WHERE schema_name = :s")
            if not session.scalar(there, {"s": schema}):
                return None
        session.expunge(unfinished)
    reporter.note(
        f"continuing the rebuild begun at {iso_utc(unfinished.started_at)}: "
        f"{unfinished.done} events were replayed (--restart starts over)"
    )
    return unfinished


def _finish_run(session_factory: sessionmaker[Session], run_id: int) -> None:
    def finish() -> None:
        with engine_of(session_factory).begin() as conn:
            conn.execute(_finished(run_id))

    retrying(finish)


def _replay_batch(
    session_factory: sessionmaker[Session], batch: list[Any], *, run_id: int | None = None
) -> list[Status]:
    outcomes: dict[str, Outcome] = {}
    engine = engine_of(session_factory)

    def write() -> None:
        with write_lock(engine), engine.begin() as conn:
            outcomes.update(_project_on(conn, batch))
            if run_id is not None:  # where the rebuild stands, committed with what it replayed
                conn.execute(_position_statement(batch[-1].time is None), _position(run_id, batch))

    retrying(write)
    return [outcomes[event.id][0] for event in batch]


def _project_on(conn: Any, events: list[Any]) -> dict[str, Outcome]:
    """Project journaled events again on ``conn`` and record their new statuses in the journal."""
    outcomes: dict[str, Outcome] = {}
    envelopes = []
    for event in events:
        try:
            envelope, _ = parse_envelope(event.headers, event.body)
        except BadDelivery as exc:  # journaled by an older version with looser checks
            outcomes[event.id] = (Status.FAILED, str(exc))
        else:
            envelopes.append(envelope)
    for envelope, outcome in zip(envelopes, project_isolated(conn, envelopes), strict=True):
        outcomes[envelope.id] = outcome
    record_statuses(conn, list(outcomes.items()))
    return outcomes


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


# --- PostgreSQL: a rebuild beside the live tables, swapped in at the end -----------------------

SHADOW_SCHEMA = "cmdb_sync_rebuild"
REPLACED_SCHEMA = "cmdb_sync_replaced"
CATCH_UP_OVERLAP = timedelta(seconds=5)  # clocks of the server and the rebuild may differ a little
CATCH_UP_ENOUGH = 200  # deliveries left for the swap to apply under its lock
LABEL_STATISTICS = "st_env_labels_name_value"  # migration 0004


def rebuilt_tables() -> list[Table]:
    """What a rebuild writes anew: every projected table (children first) and the versions."""
    return [*projection_tables(), Version.__table__]


def _rebuild_beside(
    session_factory: sessionmaker[Session], reporter: Reporter, *, restart: bool, batch_size: int
) -> None:
    """Build the new projection in a schema of its own while the server keeps serving (and
    receiving into) the live one; catch up with what arrived meanwhile; then, under a lock that
    holds deliveries for a moment, apply the last ones and swap the tables in one transaction.
    Readers see the whole old state until the swap and the whole new one after it."""
    engine = engine_of(session_factory)
    url = engine.url.render_as_string(hide_password=False)
    shadow = make_engine(url, pool_size=2, search_path=f"{SHADOW_SCHEMA},public")
    try:
        shadow_sessions = make_session_factory(shadow)
        run = _shadow_run(session_factory, shadow, reporter, restart=restart)
        reporter.set_total(count(session_factory, Selection(received_before=run.started_at)) - run.done)
        # what the journal held when the rebuild began; what comes later is caught up by arrival,
        # so a busy server cannot keep the walk chasing the end of the journal
        overlap = run.started_at - CATCH_UP_OVERLAP
        replayed: dict[str, datetime] = {}  # those the catch-up will read again: it skips them
        for batch in _batches(shadow_sessions, Selection(received_before=run.started_at), batch_size, run):
            for status in _replay_batch(shadow_sessions, batch, run_id=run.id):
                reporter.advance(status)
            replayed.update((event.id, event.received_at) for event in batch if event.received_at >= overlap)
        since, caught = _catch_up(shadow_sessions, overlap, batch_size, replayed)
        giving_way(lambda: _swap(shadow, since, run.id, caught))
        with shadow.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {REPLACED_SCHEMA} CASCADE")
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {SHADOW_SCHEMA} CASCADE")
    finally:
        shadow.dispose()


def _catch_up(
    shadow_sessions: sessionmaker[Session], since: datetime, batch_size: int, replayed: dict[str, datetime]
) -> tuple[datetime, dict[str, datetime]]:
    """Replay what the server received since ``since``, pass after pass, until a pass finds few
    new deliveries (``CATCH_UP_ENOUGH``) or no fewer than the pass before (the server receives as
    fast as this replays: the swap takes the rest under its lock). Each pass reads again the last
    ``CATCH_UP_OVERLAP`` before where the previous one began (a delivery is stamped when it arrives
    and committed a moment later), skipping what it already replayed. Returns where the last pass
    began and the ids replayed since then, which the swap skips too. ``replayed``: those of the
    first pass's span that the walk replayed (a rebuild right after an import would otherwise
    replay the import's last seconds twice)."""
    caught = dict(replayed)
    previous = None
    while True:
        mark = now_utc() - CATCH_UP_OVERLAP
        new = 0
        received = selection_received_since(since)
        for batch in keyset_batches(shadow_sessions, received, [Event.received_at, Event.id], batch_size):
            fresh = [event for event in batch if event.id not in caught]
            if fresh:
                _replay_batch(shadow_sessions, fresh)
            caught.update((event.id, event.received_at) for event in fresh)
            new += len(fresh)
        since = mark
        caught = {event_id: received_at for event_id, received_at in caught.items() if received_at >= since}
        if new <= CATCH_UP_ENOUGH or (previous is not None and new >= previous):
            return since, caught
        previous = new


def selection_received_since(since: datetime) -> Any:
    return select(Event.id, Event.time, Event.headers, Event.body, Event.received_at).where(Event.received_at >= since)


def _shadow_run(
    session_factory: sessionmaker[Session], shadow: Engine, reporter: Reporter, *, restart: bool
) -> RebuildRun:
    """The rebuild to continue (its schema is there), or a new one in a new, empty schema."""
    unfinished = None if restart else _unfinished_run(session_factory, reporter, schema=SHADOW_SCHEMA)
    if unfinished is not None:
        return unfinished

    def begin() -> RebuildRun:
        with shadow.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {SHADOW_SCHEMA} CASCADE")
            conn.exec_driver_sql(f"CREATE SCHEMA {SHADOW_SCHEMA}")
            Base.metadata.create_all(conn, tables=rebuilt_tables(), checkfirst=False)
            conn.exec_driver_sql(
                f"CREATE STATISTICS {SHADOW_SCHEMA}.{LABEL_STATISTICS} (mcv, dependencies) "
                f"ON name, value FROM {SHADOW_SCHEMA}.env_labels"
            )
            return _begin_run(conn)

    return retrying(begin)


def _swap(shadow: Engine, since: datetime, run_id: int, caught: Container[str]) -> None:
    """One transaction: the live tables locked (readers and the server's writers wait a moment),
    the journal locked against new deliveries, the last ones applied to the new tables, and the
    tables exchanged. A reader that waited then reads the new table (PostgreSQL looks the name up
    again once it has the lock). It waits for each lock only briefly: a reader that holds one
    table and waits for another the swap holds would otherwise deadlock with it."""
    tables = rebuilt_tables()
    with shadow.begin() as conn:
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{BRIEF_LOCK_WAIT}'")
        live = ", ".join(f'public."{table.name}"' for table in tables)
        conn.exec_driver_sql(f"LOCK TABLE {live} IN ACCESS EXCLUSIVE MODE")
        conn.exec_driver_sql("LOCK TABLE public.events IN EXCLUSIVE MODE")
        received = conn.execute(selection_received_since(since).order_by(Event.time, Event.id)).all()
        last = [event for event in received if event.id not in caught]
        if last:
            _project_on(conn, last)
        conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {REPLACED_SCHEMA} CASCADE")
        conn.exec_driver_sql(f"CREATE SCHEMA {REPLACED_SCHEMA}")
        for table in tables:
            conn.exec_driver_sql(f'ALTER TABLE public."{table.name}" SET SCHEMA {REPLACED_SCHEMA}')
        for table in tables:
            conn.exec_driver_sql(f'ALTER TABLE {SHADOW_SCHEMA}."{table.name}" SET SCHEMA public')
        conn.exec_driver_sql(f"DROP STATISTICS IF EXISTS public.{LABEL_STATISTICS}")
        conn.exec_driver_sql(f"ALTER STATISTICS {SHADOW_SCHEMA}.{LABEL_STATISTICS} SET SCHEMA public")
        conn.execute(_finished(run_id))
