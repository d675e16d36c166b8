"""The database: one factory of engines and sessions for the server and every command, the
dialect-aware upsert every projection writes through, and a keyset walker for long reads."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Self, TypeVar

from sqlalchemy import Engine, Select, Table, bindparam, create_engine, event, text, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement


def make_engine(
    url: str, *, pool_size: int = 10, search_path: str | None = None, settings: dict[str, str] | None = None
) -> Engine:
    """An engine configured for concurrent writers on either database (``settings``: PostgreSQL
    settings of its sessions).

    SQLite gets WAL (readers never wait for the writer), a busy timeout (writers queue instead of
    failing), and ``BEGIN IMMEDIATE`` so a transaction takes the write lock up front rather than
    failing to upgrade a read lock halfway, which is how two writers deadlock in SQLite.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            read_only = conn.get_execution_options().get(READ_ONLY, False)
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    options = {**({"search_path": search_path} if search_path else {}), **(settings or {})}
    connect_args = {"options": " ".join(f"-c {name}={value}" for name, value in options.items())} if options else {}
    return create_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, connect_args=connect_args
    )


READ_ONLY = "cmdb_sync_read_only"
T = TypeVar("T")
log = logging.getLogger(__name__)
_SQLITE_WRITERS: dict[str, threading.Lock] = {}
_SQLITE_WRITERS_GUARD = threading.Lock()


def write_lock(engine: Engine) -> AbstractContextManager[Any]:
    """On SQLite, writers of one process queue on a lock rather than on SQLite's busy handler,
    whose sleep-and-retry makes a long latency tail under concurrent deliveries. PostgreSQL needs
    nothing: its row locks order concurrent writers of one object and let the others run."""
    if engine.dialect.name != "sqlite":
        return nullcontext()
    key = engine.url.render_as_string(hide_password=False)
    with _SQLITE_WRITERS_GUARD:
        return _SQLITE_WRITERS.setdefault(key, threading.Lock())


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def make_read_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that only read: on SQLite they begin deferred, so in WAL mode they read a snapshot
    beside the writer instead of queueing for the write lock as writers do. On PostgreSQL they run
    in autocommit: under READ COMMITTED each statement reads its own snapshot anyway, and a
    request spared ``BEGIN`` and ``ROLLBACK`` makes two round trips fewer (measured: GET one env)."""
    options: dict[str, Any] = {READ_ONLY: True}
    if engine.dialect.name == "postgresql":
        options["isolation_level"] = "AUTOCOMMIT"
    return sessionmaker(engine.execution_options(**options), expire_on_commit=False)


@dataclass(frozen=True)
class Database:
    """One database as the server and every command use it: the engine, sessions that write and
    sessions that only read. Built once per process and disposed once (``with Database.open(...)``)."""

    engine: Engine
    sessions: sessionmaker[Session]
    read_sessions: sessionmaker[Session]
    primary_read_sessions: sessionmaker[Session]
    replica: Engine | None = None

    @classmethod
    def open(cls, url: str, *, pool_size: int = 10, read_url: str | None = None) -> Self:
        """``read_url``: a streaming replica that ``read_sessions`` read from (the primary's own
        read sessions stay at hand for a read that must see what was just written)."""
        engine = make_engine(url, pool_size=pool_size)
        primary_reads = make_read_session_factory(engine)
        if read_url is None:
            return cls(engine, make_session_factory(engine), primary_reads, primary_reads)
        replica = make_engine(read_url, pool_size=pool_size)
        return cls(engine, make_session_factory(engine), make_read_session_factory(replica), primary_reads, replica)

    def dispose(self) -> None:
        self.engine.dispose()
        if self.replica is not None:
            self.replica.dispose()

    def analyze(self, tables: Sequence[str] = ()) -> None:
        """Refresh the planner's statistics after a bulk load (PostgreSQL), so the first reads after
        an import or a rebuild are planned on what the tables now hold, not on what autovacuum
        last saw (measured: a label filter at 1 s instead of 3 ms on a freshly filled inventory).
        ``tables``: only those (a rebuild leaves the journal as it was), else every table of the
        schema. Two connections analyze half the tables each: one ANALYZE is one core's work, and
        the command waits for it with the other idle (1 s at the end of an import of 200,000)."""
        if self.engine.dialect.name != "postgresql":
            return
        with self.engine.connect() as connection:
            sizes = connection.execute(
                text(  # pages now (reltuples is stale until the first ANALYZE); a partitioned table twice
                    "SELECT c.relname, (1 + (c.relkind = 'p')::int) * least(30000, "
                    "(pg_relation_size(c.oid) + coalesce(sum(pg_relation_size(i.inhrelid)), 0)) / 8192)::bigint "
                    "FROM pg_class c LEFT JOIN pg_inherits i ON i.inhparent = c.oid "
                    "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') "
                    "AND NOT c.relispartition GROUP BY c.oid, c.relname, c.relkind"
                )
            ).all()
        wanted = set(tables)
        halves: tuple[list[str], list[str]] = ([], [])
        weights = [0.0, 0.0]
        for name, pages in sorted(sizes, key=lambda row: -row[1]):  # ANALYZE samples 30,000 pages at most
            if wanted and name not in wanted:
                continue
            lighter = weights.index(min(weights))
            halves[lighter].append(name)
            weights[lighter] += pages + 500  # a table's own cost, however small
        with ThreadPoolExecutor(2) as pool:
            for done in [pool.submit(self._analyze, half) for half in halves if half]:
                done.result()  # an error is the command's

    def _analyze(self, tables: list[str]) -> None:
        with self.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE " + ", ".join(f'"{name}"' for name in tables))
            connection.commit()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.dispose()


STATISTICS_LOCK_WAIT = "1s"


class FillingStatistics:
    """The planner's statistics of tables a bulk write fills from empty, refreshed as they fill
    (PostgreSQL): after ``at`` rows written, each step once.

    A prepared statement keeps the generic plan it was given on what the tables held when it was
    prepared, until their statistics change; tables that were never analyzed (a new database, a
    rebuild's fresh tables, and autovacuum off or not yet around) give the planner nothing to
    choose between two indexes by. Measured: the held change requests looked up by ``(org_id,
    sn)`` down the ``(org_id, app_name, sn)`` index, reading every change request of the org
    (7 ms a batch, 2.8 s of the 20 s PostgreSQL spent on an import of 200,000 events). The tables
    named are the kinds' own (looked up by key every batch), small beside their children and the
    journal, so an ``ANALYZE`` of them costs little. It is only for speed: one that cannot take its
    lock at once (autovacuum is analyzing the table already) or fails is logged and skipped, and
    the bulk write goes on."""

    def __init__(self, engine: Engine, tables: Sequence[str], at: Sequence[int] = (2_000, 20_000)) -> None:
        self.engine, self.tables, self.steps = engine, tuple(tables), sorted(at)

    def written(self, rows: int) -> None:
        """``rows`` have been written in all so far: analyze if that passed a step not taken yet."""
        if not self.steps or rows < self.steps[0] or self.engine.dialect.name != "postgresql":
            return
        while self.steps and rows >= self.steps[0]:
            self.steps.pop(0)
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{STATISTICS_LOCK_WAIT}'")
                connection.exec_driver_sql("ANALYZE " + ", ".join(f'"{name}"' for name in self.tables))
                connection.commit()
        except DBAPIError as exc:
            log.warning(
                "statistics of %s not refreshed at %d rows: %s", ", ".join(self.tables), rows, describe_error(exc)
            )


# PostgreSQL serialization failure and deadlock: the transaction is tried again as a whole.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
MAX_ATTEMPTS = 5


def retrying(transaction: Callable[[], T]) -> T:
    """Run ``transaction`` (which opens and commits its own), again when PostgreSQL chose it as
    the victim of a deadlock or a serialization failure; concurrent writers (the server's, a
    replay's) touch the same rows in different orders, and one of them must give way."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return transaction()
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) not in RETRYABLE_SQLSTATES or attempt == MAX_ATTEMPTS:
                raise
            log.info("transaction tried again (%d of %d) after: %s", attempt + 1, MAX_ATTEMPTS, describe_error(exc))
    raise AssertionError("unreachable")  # pragma: no cover


# A transaction that needs strong locks (the rebuild's swap, a journal partition's detach or
# attach) waits this long for each, then gives way: readers and deliveries queued behind its
# request go on, and it is tried again after a pause. Waiting longer would hold them all up, and a
# reader waiting on it in turn would be a deadlock that PostgreSQL breaks by failing the reader.
BRIEF_LOCK_WAIT = "100ms"
LOCK_NOT_AVAILABLE = "55P03"


def giving_way(transaction: Callable[[], T], *, attempts: int = 300, pause: float = 0.02) -> T:
    """Run ``transaction`` (which opens and commits its own, and sets a short ``lock_timeout``:
    ``BRIEF_LOCK_WAIT``, or less) again while it cannot have its locks in time, pausing a little
    longer each time."""
    for attempt in range(1, attempts + 1):
        try:
            return retrying(transaction)
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE or attempt == attempts:
                raise
            log.info("gave way to other transactions (%d of %d): %s", attempt, attempts, describe_error(exc))
            time.sleep(min(pause * attempt, 1.0))
    raise AssertionError("unreachable")  # pragma: no cover


# SQLSTATE classes that blame the data sent, not the database: 22 data exception (a value out of
# range, bad encoding), 54 program limit exceeded (an index entry too large for a long name).
DATA_ERROR_CLASSES = frozenset({"22", "54"})


def is_data_error(exc: BaseException) -> bool:
    """Whether the database refused a statement because of a value in it: permanent, so the
    event that carried it fails, and it is never answered as the transient 503. Encoding errors
    raised before the statement reaches the database count too."""
    orig = getattr(exc, "orig", None) or exc
    sqlstate = getattr(orig, "sqlstate", None) or ""
    return sqlstate[:2] in DATA_ERROR_CLASSES or isinstance(orig, UnicodeError)


def describe_error(exc: BaseException) -> str:
    """The first line of what the driver said: enough for an operator, without the SQL and traceback."""
    orig = getattr(exc, "orig", None)
    lines = str(orig or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def upsert(
    session: Session,
    table: Table,
    values: Mapping[str, Any],
    *,
    conflict: Iterable[str],
    update: Iterable[str] | None = None,
    where: Callable[[Any], ColumnElement[bool]] | None = None,
    returning: ColumnElement[Any] | None = None,
) -> Any:
    """``INSERT ... ON CONFLICT (conflict) DO UPDATE SET update ... WHERE where [RETURNING]``.

    With ``update=None`` it is ``DO NOTHING``. ``where`` receives the ``excluded`` row (the one
    proposed) and returns the condition under which the held row is overwritten. Returns the ``returning`` value of the inserted or
    updated row, or None when the conflict left the row alone (the guard said no). This is atomic
    under concurrent writers on both databases: no read happens before the write.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table).values(**values)
    if update is None:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(conflict))
    else:
        stmt = stmt.on_conflict_do_update(
            index_elements=list(conflict),
            set_={name: stmt.excluded[name] for name in update},
            where=where(stmt.excluded) if where is not None else None,
        )
    if returning is None:
        session.execute(stmt)
        return None
    return session.execute(stmt.returning(returning)).scalar_one_or_none()


def past(keys: Sequence[Any], values: Sequence[Any], *, descending: bool = False) -> ColumnElement[bool]:
    """The keyset condition: rows whose ``keys`` come after ``values`` in the order (before them
    when ``descending``), each value bound with its key's type."""
    bound = tuple_(*(bindparam(None, value, type_=key.type) for key, value in zip(keys, values, strict=True)))
    return beyond(keys, bound, descending=descending)


def beyond(keys: Sequence[Any], bound: Any, *, descending: bool = False) -> ColumnElement[bool]:
    """``past`` with the values already SQL (``bound``: a tuple of parameters, say)."""
    return tuple_(*keys) < bound if descending else tuple_(*keys) > bound


def keyset_batches(
    session_factory: sessionmaker[Session],
    stmt: Select[Any],
    keys: Sequence[Any],
    batch_size: int,
    *,
    after: list[Any] | None = None,
) -> Iterator[list[Any]]:
    """Every row ``stmt`` selects, in ``keys`` order (columns it selects, unique together), a batch
    at a time, from just past ``after`` when given: memory holds one batch, and each batch is its
    own short read transaction, so nothing is held open between batches (on SQLite, not the write
    lock either)."""
    while True:
        page = stmt if after is None else stmt.where(past(keys, after))
        with session_factory() as session:  # Core rows: the ORM's loading cost a tenth of a replay
            connection = session.connection(execution_options={READ_ONLY: True})
            batch = connection.execute(page.order_by(*keys).limit(batch_size)).all()
        if not batch:
            return
        yield batch
        after = [getattr(batch[-1], key.key) for key in keys]
