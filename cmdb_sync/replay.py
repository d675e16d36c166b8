"""Re-apply the journal to the projections: after a fix (``--failed``) or from scratch (``--rebuild``).

The journal is read in ``(time, id)`` order in keyset batches, so memory stays flat whatever its
size. Each batch is one transaction, projected by the same batch projector as deliveries are. It is safe while the server receives deliveries: projections converge whatever the order
in which events are applied, so an event the server applies during a replay and the replay's own
copy of it agree. A rebuild on PostgreSQL walks the journal in two processes, dealt by app
(``_walk_in_lanes``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Engine, Table, Text, bindparam, cast, delete, func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from cmdb_sync.db import (
    BRIEF_LOCK_WAIT,
    FillingStatistics,
    giving_way,
    keyset_batches,
    make_engine,
    make_session_factory,
    retrying,
    write_lock,
)
from cmdb_sync.errors import BadDelivery
from cmdb_sync.events import json_loads, parse_envelope
from cmdb_sync.ingest import engine_of, record_statuses
from cmdb_sync.lanes import LaneStopped, running
from cmdb_sync.models import Base, Event, RebuildRun, Version
from cmdb_sync.progress import Reporter
from cmdb_sync.projections import object_tables, projection_tables
from cmdb_sync.projections.batch import Outcome, project_isolated
from cmdb_sync.status import Status
from cmdb_sync.times import iso_utc, now_utc

BATCH_SIZE = 2000
REBUILD_LANES = 2  # processes a rebuild on PostgreSQL walks the journal in (see _walk_in_lanes)


class RebuildStopped(Exception):
    """A rebuild's lane stopped before the end: what it replayed is kept, and running the rebuild
    again continues from there."""


@dataclass(frozen=True)
class Selection:
    """Which journaled events a replay takes."""

    failed_only: bool = False
    since: datetime | None = None
    kind: str | None = None
    received_before: datetime | None = None
    lane: tuple[int, int] | None = None  # (lane, lanes): only the events dealt to that lane

    def where(self, stmt: Any) -> Any:
        if self.lane is not None:
            stmt = stmt.where(_in_lane(*self.lane))
        if self.received_before is not None:
            stmt = stmt.where(Event.received_at < self.received_before)
        if self.failed_only:
            stmt = stmt.where(Event.status == Status.FAILED)
        if self.since is not None:
            stmt = stmt.where(Event.time >= self.since)
        if self.kind is not None:
            stmt = stmt.where(Event.kind == self.kind)
        return stmt


def _in_lane(lane: int, lanes: int) -> Any:
    """Events are dealt to lanes by their app (the ``X-AppStack-App`` header; none counts as ''),
    where they keep their order. An object is most often named under one app; one that is not (a
    change order's sn is the org's, not the app's) may have events in two lanes (``_project_on``)."""
    dealt = "mod(('x' || left(md5(coalesce(events.app, '')), 8))::bit(32)::int & 2147483647, :lanes) = :lane"
    return text(dealt).bindparams(lanes=lanes, lane=lane)


def count(session_factory: sessionmaker[Session], selection: Selection) -> int:
    with session_factory() as session:
        return session.scalar(selection.where(select(func.count()).select_from(Event))) or 0


def _batches(
    session_factory: sessionmaker[Session], selection: Selection, batch_size: int, run: Any | None = None
) -> Iterator[list[Any]]:
    """The selected events in ``(time, id)`` order, one batch at a time, past where ``run`` stands.
    Events whose time could not be read (journaled as failed) come first, by id: they have no
    place in time."""
    # the headers as text, decoded here: psycopg's JSON loader took a fifth of reading a batch
    columns = select(
        Event.id,
        Event.time,
        cast(Event.headers, Text).label("headers"),
        Event.body,
        Event.received_at,
        Event.status,
        Event.error,
    )
    resumed_in_time = run is not None and run.timed_after_id is not None
    if not resumed_in_time:
        untimed = selection.where(columns.where(Event.time.is_(None)))
        after = [run.untimed_after] if run is not None and run.untimed_after is not None else None
        for batch in keyset_batches(session_factory, untimed, [Event.id], batch_size, after=after):
            yield _journaled(batch)
    timed = selection.where(columns.where(Event.time.is_not(None)))
    after = [run.timed_after_time, run.timed_after_id] if resumed_in_time else None  # type: ignore[union-attr]
    for batch in keyset_batches(session_factory, timed, [Event.time, Event.id], batch_size, after=after):
        yield _journaled(batch)


class Journaled(NamedTuple):
    """A journaled event as a replay reads it."""

    id: str
    time: datetime | None
    headers: dict[str, str]
    body: str
    received_at: datetime
    status: str
    error: str | None


def _journaled(rows: list[Any]) -> list[Journaled]:
    return [
        Journaled(row.id, row.time, json_loads(row.headers), row.body, row.received_at, row.status, row.error)
        for row in rows
    ]


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
        for status in _replay_batch(session_factory, batch, position=_run_position(run) if run is not None else None):
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


Position = Callable[[Any, list[Any]], None]  # records where a walk stands, in its batch's transaction


def _replay_batch(
    session_factory: sessionmaker[Session],
    batch: list[Any],
    *,
    position: Position | None = None,
    in_order: bool = False,
) -> list[Status]:
    outcomes: dict[str, Outcome] = {}
    engine = engine_of(session_factory)

    def write() -> None:
        with write_lock(engine), engine.begin() as conn:
            outcomes.update(_project_on(conn, batch, in_order=in_order))
            if position is not None:  # where the rebuild stands, committed with what it replayed
                position(conn, batch)

    retrying(write)
    return [outcomes[event.id][0] for event in batch]


def _project_on(conn: Any, events: list[Any], *, in_order: bool = False) -> dict[str, Outcome]:
    """Project journaled events again on ``conn`` and record their new statuses in the journal.

    ``in_order``: the events are part of a rebuild's walk, which gives every object its events in
    ``(time, id)`` order on tables that hold only what the walk wrote: one by one, every event
    that has a snapshot applies. Found stale, an event met a newer version of its object that
    another lane wrote first; one by one it would have applied before that one, which stands
    either way: it is recorded as applied."""
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
        outcomes[envelope.id] = (Status.APPLIED, None) if in_order and outcome[0] is Status.STALE else outcome
    # only what changes is written: a rebuild mostly finds the status the journal holds
    journaled = {event.id: (event.status, event.error) for event in events}
    record_statuses(conn, [(i, (s, e)) for i, (s, e) in outcomes.items() if (s.value, e) != journaled.get(i)])
    return outcomes


def _run_position(run: RebuildRun) -> Position:
    def record(conn: Any, batch: list[Any]) -> None:
        conn.execute(_position_statement(batch[-1].time is None), _position(run.id, batch))

    return record


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
        lanes = _lanes(shadow, run)
        if lanes:
            # the lanes share the batch: the rebuild holds as much in memory as one walk would
            statistics = FillingStatistics(shadow, [table.name for table in object_tables()])
            _walk_in_lanes(url, run, lanes, max(1, batch_size // len(lanes)), reporter, statistics)
        else:
            for batch in _batches(shadow_sessions, Selection(received_before=run.started_at), batch_size, run):
                for status in _replay_batch(shadow_sessions, batch, position=_run_position(run)):
                    reporter.advance(status)
        since, caught = _catch_up(shadow_sessions, run.started_at - CATCH_UP_OVERLAP, batch_size)
        giving_way(lambda: _swap(shadow, since, run.id, caught))
        with shadow.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {REPLACED_SCHEMA} CASCADE")
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {SHADOW_SCHEMA} CASCADE")
    finally:
        shadow.dispose()


# --- the walk in lanes: one process each -----------------------------------------------------------
#
# A rebuild is mostly Python (parsing, snapshots, rows) and PostgreSQL's work, one after the other
# in one process. Events of different apps are independent (statuses, versions and the implied
# apps are per object or idempotent), so the walk is dealt to processes by app: each walks its
# events in (time, id) order, in batches of its own, and records where it stands in the shadow
# schema; a stopped rebuild continues every lane from there.

LANES_TABLE = f"{SHADOW_SCHEMA}.rebuild_lanes"
# A lane's batch commits with its position, so a commit lost in a crash is a position lost with
# it: the lane replays that batch again. Its commits need not wait for the disk (the swap's
# commit, which waits, is written after theirs).
LANE_COMMITS = {"synchronous_commit": "off"}
# The planner cannot know that a lane holds half the journal (it guesses 0.5%), so it read the
# whole journal and sorted it for every batch (117 ms of a batch's 138); a lane reads down the
# (time, id) index instead, as the walk in one process does.
DOWN_THE_INDEX = {"enable_seqscan": "off", "enable_bitmapscan": "off", "enable_sort": "off", "jit": "off"}


@dataclass(frozen=True)
class _LanePosition:
    """Where a lane stands, as ``_batches`` reads a position."""

    untimed_after: str | None
    timed_after_time: datetime | None
    timed_after_id: str | None


def _lanes(shadow: Engine, run: RebuildRun) -> list[_LanePosition]:
    """Where each lane stands; none when the walk is one process (``REBUILD_LANES`` 1, and no
    lane was begun). A rebuild begun in lanes continues in as many; one begun in one walk continues
    in lanes from where that walk stood."""
    with shadow.begin() as conn:
        if conn.scalar(text("SELECT to_regclass(:t)"), {"t": LANES_TABLE}) is None:
            if REBUILD_LANES < 2:
                return []
            conn.exec_driver_sql(
                f"CREATE TABLE {LANES_TABLE} (lane integer PRIMARY KEY, untimed_after varchar, "
                "timed_after_time timestamptz, timed_after_id varchar)"
            )
            begun = {"u": run.untimed_after, "t": run.timed_after_time, "i": run.timed_after_id}
            for lane in range(REBUILD_LANES):
                conn.execute(text(f"INSERT INTO {LANES_TABLE} VALUES (:lane, :u, :t, :i)"), {"lane": lane, **begun})
        rows = conn.execute(text(f"SELECT * FROM {LANES_TABLE} ORDER BY lane")).all()
    return [_LanePosition(row.untimed_after, row.timed_after_time, row.timed_after_id) for row in rows]


def _lane_position(run_id: int, lane: int) -> Position:
    def record(conn: Any, batch: list[Any]) -> None:
        last = batch[-1]
        if last.time is None:
            conn.execute(
                text(f"UPDATE {LANES_TABLE} SET untimed_after = :i WHERE lane = :lane"), {"i": last.id, "lane": lane}
            )
        else:
            conn.execute(
                text(f"UPDATE {LANES_TABLE} SET timed_after_time = :t, timed_after_id = :i WHERE lane = :lane"),
                {"t": last.time, "i": last.id, "lane": lane},
            )
        table = RebuildRun.__table__
        conn.execute(update(table).where(table.c.id == run_id).values(done=table.c.done + len(batch)))

    return record


def _walk_in_lanes(
    url: str,
    run: RebuildRun,
    lanes: list[_LanePosition],
    batch_size: int,
    reporter: Reporter,
    statistics: FillingStatistics,
) -> None:
    """Walk the journal in one process per lane; tell the reporter what each batch did."""
    arguments = [
        (url, run.id, run.started_at, (lane, len(lanes)), position, batch_size) for lane, position in enumerate(lanes)
    ]
    try:
        with running(_walk_lane, arguments, name="cmdb-sync rebuild") as walking:
            walked = 0
            while walking.working:
                for _, (_, counts) in walking.receive():
                    for status, n in counts.items():
                        reporter.advance(status, n)
                    walked += sum(counts.values())
                    statistics.written(walked)
    except LaneStopped as exc:
        msg = (
            f"rebuild lane {exc.lane} {exc.detail}; run `cmdb-sync replay --rebuild` again to continue where it stopped"
        )
        raise RebuildStopped(msg) from None


def _walk_lane(
    url: str,
    run_id: int,
    received_before: datetime,
    lane: tuple[int, int],
    position: _LanePosition,
    batch_size: int,
    _inbox: Any,
    outbox: Any,
) -> None:
    """One lane of a rebuild, in a process of its own (``_walk_in_lanes``)."""
    shadow = make_engine(url, pool_size=1, search_path=f"{SHADOW_SCHEMA},public", settings=LANE_COMMITS)
    reader = make_engine(url, pool_size=1, search_path=f"{SHADOW_SCHEMA},public", settings=DOWN_THE_INDEX)
    try:
        sessions = make_session_factory(shadow)
        selection = Selection(received_before=received_before, lane=lane)
        record = _lane_position(run_id, lane[0])
        for batch in _batches(make_session_factory(reader), selection, batch_size, position):
            statuses = _replay_batch(sessions, batch, position=record, in_order=True)
            outbox.send(("batch", Counter(status.value for status in statuses)))
    finally:
        shadow.dispose()
        reader.dispose()


def _catch_up(
    shadow_sessions: sessionmaker[Session], since: datetime, batch_size: int
) -> tuple[datetime, dict[str, datetime]]:
    """Replay what the server received since ``since``, pass after pass, until a pass finds few
    new deliveries (``CATCH_UP_ENOUGH``) or no fewer than the pass before (the server receives as
    fast as this replays: the swap takes the rest under its lock). Each pass reads again the last
    ``CATCH_UP_OVERLAP`` before where the previous one began (a delivery is stamped when it arrives
    and committed a moment later), skipping what it already replayed. Returns where the last pass
    began and the ids replayed since then, which the swap skips too. An event the new tables hold
    a version of was replayed already (by the walk, whose last seconds the first pass reads again,
    or by a walk that stopped before this one continued it): it is skipped too; replayed again,
    it would be found stale against itself. One the walk replayed that has no version (failed,
    unsupported) is replayed again: sent again with a fix meanwhile, it is then projected."""
    caught: dict[str, datetime] = {}
    previous = None
    while True:
        mark = now_utc() - CATCH_UP_OVERLAP
        new = 0
        received = selection_received_since(since)
        for batch in keyset_batches(shadow_sessions, received, [Event.received_at, Event.id], batch_size):
            fresh = [event for event in batch if event.id not in caught]
            with shadow_sessions() as session:
                versioned = _versioned(session.connection(), [event.id for event in fresh])
            fresh = [event for event in fresh if event.id not in versioned]
            if fresh:
                _replay_batch(shadow_sessions, fresh)
            caught.update((event.id, event.received_at) for event in fresh)
            new += len(fresh)
        since = mark
        caught = {event_id: received_at for event_id, received_at in caught.items() if received_at >= since}
        if new <= CATCH_UP_ENOUGH or (previous is not None and new >= previous):
            return since, caught
        previous = new


def _versioned(conn: Any, event_ids: list[str]) -> set[str]:
    """Those of ``event_ids`` the tables ``conn`` writes (the new ones) hold a version of."""
    if not event_ids:
        return set()
    found = select(Version.event_id).where(Version.event_id.in_(bindparam("ids", expanding=True)))
    return set(conn.execute(found, {"ids": event_ids}).scalars())


def selection_received_since(since: datetime) -> Any:
    columns = (Event.id, Event.time, Event.headers, Event.body, Event.received_at, Event.status, Event.error)
    return select(*columns).where(Event.received_at >= since)


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
        versioned = _versioned(conn, [event.id for event in last])
        last = [event for event in last if event.id not in versioned]
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
