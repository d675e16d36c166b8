"""``cmdb-sync journal archive --before 2025-01``: old months out of the journal, into a file.

1. The deliveries received before the month (and after the previous archive's) are written to a
   gzip'd JSON Lines file in ``export``'s form, which ``import`` reads back (into a new database,
   they rebuild what they held). The file is written beside its name and renamed when complete.
2. The archive is recorded (``journal_archives``) before anything is removed: from then on, as-of
   reads before its *horizon* (the newest event time it holds) are refused, and history pages say
   what was archived.
3. The journal is trimmed. Kept are the last snapshot of each object among the archived ones, and
   its last tombstone (what the inventory and an as-of read at or after the horizon are made of,
   and what a rebuild needs); their versions stay too. The others go, with their versions.
   On PostgreSQL each month's partition is replaced by a table of its kept rows: built beside it,
   then swapped in a transaction that waits for its locks only briefly (``giving_way``), so no
   delivery waits on it for long. On SQLite, rows are deleted a batch at a time.

Stopped halfway, run again with the same ``--before``: it finishes the trimming, with the file
already written. A delivery sent again after its month was archived answers duplicate (its id is
kept in ``event_ids``).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from cmdb_sync.archive import EXPORT_BATCH, EXPORTED_COLUMNS, export_line, received_order
from cmdb_sync.db import giving_way
from cmdb_sync.errors import CmdbSyncError
from cmdb_sync.ingest import engine_of
from cmdb_sync.models import Event, JournalArchive, Version
from cmdb_sync.partitions import (
    DEFAULT_PARTITION,
    add_months,
    month_table,
    monthly_partitions,
    partition_name,
    partitioned,
)
from cmdb_sync.progress import Reporter
from cmdb_sync.status import Status
from cmdb_sync.times import month_text, now_utc

log = logging.getLogger(__name__)

TRIM_BATCH = 2000
# Detaching a partition takes the journal's strongest lock: deliveries queue behind the request
# while it waits, so it waits less than the 100 ms a delivery may be held up, then tries again.
SWAP_LOCK_WAIT = "40ms"


class ArchiveRefused(CmdbSyncError):
    status_code = 409
    title = "Archive refused"


@dataclass(frozen=True)
class Archived:
    file: Path
    archived: int
    kept: int
    horizon: datetime | None
    resumed: bool


def default_file(before: datetime) -> Path:
    return Path(f"cmdb-sync-journal-before-{month_text(before)}.jsonl.gz")


def archive(
    session_factory: sessionmaker[Session], before: datetime, target: Path | None, reporter: Reporter
) -> Archived:
    engine = engine_of(session_factory)
    with session_factory() as session:
        under_way = session.scalars(select(JournalArchive).where(JournalArchive.finished_at.is_(None))).first()
        finished = session.scalar(
            select(func.max(JournalArchive.before)).where(JournalArchive.finished_at.is_not(None))
        )
    if under_way is not None:
        if under_way.before != before:
            msg = (
                f"an archive of the deliveries before {month_text(under_way.before)} is under way (written to "
                f"{under_way.file}): run `cmdb-sync journal archive --before {month_text(under_way.before)}` to finish it first"
            )
            raise ArchiveRefused(msg)
        reporter.note(f"continuing the archive begun {under_way.archived_at:%Y-%m-%d %H:%M} ({under_way.file})")
        kept = _trim(engine, before, reporter)
        _finish(engine, under_way.id, kept)
        return Archived(Path(under_way.file), under_way.archived, kept, under_way.horizon, resumed=True)
    if finished is not None and before <= finished:
        msg = f"the deliveries received before {month_text(finished)} are archived already: nothing to do"
        raise ArchiveRefused(msg)
    selection = select(*EXPORTED_COLUMNS).where(Event.received_at < before)
    if finished is not None:
        selection = selection.where(Event.received_at >= finished)
    with session_factory() as session:
        total = session.scalar(select(func.count()).select_from(selection.subquery())) or 0
        horizon = session.scalar(
            select(func.max(Version.time)).join(Event, Event.id == Version.event_id).where(Event.received_at < before)
        )
    if total == 0:
        msg = f"no deliveries were received before {month_text(before)}: nothing to archive"
        raise ArchiveRefused(msg)
    path = target or default_file(before)
    if path.exists():
        msg = f"{path} exists: archives are never overwritten (choose another with --to)"
        raise ArchiveRefused(msg)
    reporter.set_total(total)
    digest = _write(session_factory, selection, path, reporter)
    with engine.begin() as conn:
        record = conn.execute(
            insert(JournalArchive)
            .values(
                before=before,
                horizon=horizon,
                file=str(path.resolve()),
                sha256=digest,
                archived=total,
                kept=0,
                archived_at=now_utc(),
            )
            .returning(JournalArchive.id)
        ).scalar_one()
    kept = _trim(engine, before, reporter)
    _finish(engine, record, kept)
    return Archived(path, total, kept, horizon, resumed=False)


def _write(session_factory: sessionmaker[Session], selection: Any, path: Path, reporter: Reporter) -> str:
    """The selected deliveries to ``path``, in the order received; its sha256. Written beside and
    renamed once on disk whole, so a file by that name is always a complete archive; stopped before
    (Ctrl-C, SIGTERM, the database gone), it leaves nothing behind, and nothing was recorded."""
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("wb") as raw:
            with gzip.GzipFile(filename=path.name.removesuffix(".gz"), mode="wb", fileobj=raw) as out:
                for batch in received_order(session_factory, selection, EXPORT_BATCH):
                    out.write("".join(export_line(event) + "\n" for event in batch).encode())
                    reporter.advance(Status.EXPORTED, len(batch))
            raw.flush()
            os.fsync(raw.fileno())
    except OSError as exc:  # no such folder, no permission, the disk full: nothing was archived
        partial.unlink(missing_ok=True)
        msg = f"cannot write {partial}: {exc.strerror or exc}; nothing was archived (choose another file with --to)"
        raise ArchiveRefused(msg) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)
    digest = hashlib.sha256()
    with path.open("rb") as done:
        for block in iter(lambda: done.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _finish(engine: Engine, record: int, kept: int) -> None:
    with engine.begin() as conn:
        conn.execute(update(JournalArchive).where(JournalArchive.id == record).values(kept=kept, finished_at=now_utc()))


# --- trimming ------------------------------------------------------------------------------------

_KEPT = "archive_kept"


def _kept_sql(conn: Connection) -> str:
    """Of the versions of deliveries received before ``:before``, each object's newest, and its
    newest tombstone (an App's keeps the hiding of its older objects). Versions order by
    ``(time, id)``, ids by code point."""
    by_code_point = ' COLLATE "C"' if conn.dialect.name == "postgresql" else ""
    order = f"v.time DESC, v.event_id{by_code_point} DESC"
    return (
        f"INSERT INTO {_KEPT} (event_id) SELECT event_id FROM ("
        "SELECT v.event_id, v.deleted, "
        f"row_number() OVER (PARTITION BY v.kind, v.org_id, v.app_name, v.name ORDER BY {order}) AS newest, "
        f"row_number() OVER (PARTITION BY v.kind, v.org_id, v.app_name, v.name, v.deleted ORDER BY {order}) AS newest_alike "
        "FROM versions v JOIN events e ON e.id = v.event_id WHERE e.received_at < :before"
        ") s WHERE newest = 1 OR (deleted AND newest_alike = 1)"
    )


def _before(sql: str) -> Any:
    return text(sql).bindparams(bindparam("before", type_=Event.received_at.type))


def _trim(engine: Engine, before: datetime, reporter: Reporter) -> int:
    """Remove what the archive holds from the journal but for what is kept; the rows kept."""
    with engine.connect() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_KEPT}")
        conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {_KEPT} (event_id VARCHAR PRIMARY KEY)")
        conn.execute(_before(_kept_sql(conn)), {"before": before})
        kept = conn.exec_driver_sql(f"SELECT count(*) FROM {_KEPT}").scalar_one()
        is_partitioned = partitioned(conn)
        months = sorted(m for m in monthly_partitions(conn) if add_months(m, 1) <= before) if is_partitioned else []
        conn.commit()
        if is_partitioned:
            for month in months:
                _trim_month(conn, month, reporter)
            _trim_rows(conn, DEFAULT_PARTITION, before)
        else:
            _trim_rows(conn, "events", before)
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_KEPT}")
        conn.commit()
    reporter.note(f"kept in the journal: {kept} last snapshots (of objects and of tombstones)")
    return kept


def _trim_month(conn: Connection, month: datetime, reporter: Reporter) -> None:
    """One month's partition replaced by a table of its kept rows. The table is built and the
    versions that go are deleted first, each in a transaction that holds nothing but its own rows;
    the swap is a transaction of its own that only detaches, attaches, drops and renames. It takes
    the journal's strongest lock: it waits for it at most ``SWAP_LOCK_WAIT`` and gives way when it
    cannot have it. Stopped anywhere, the next run finds the month still to trim and does it again."""
    name = partition_name(month)
    trimmed = f"{name}_trimmed"
    with conn.begin():
        # left by a run that stopped: the table it was building, or the month it had swapped out
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {trimmed}, {name}_archived")
        held = conn.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar_one()
        keeping = conn.exec_driver_sql(
            f"SELECT count(*) FROM {name} e JOIN {_KEPT} k ON k.event_id = e.id"
        ).scalar_one()
        if keeping == held:
            return  # archived before, nothing more goes
        bounds = month_table(conn, trimmed, month)
        conn.exec_driver_sql(f"INSERT INTO {trimmed} SELECT e.* FROM {name} e JOIN {_KEPT} k ON k.event_id = e.id")
    with conn.begin():
        conn.exec_driver_sql(
            f"DELETE FROM versions v USING {name} e WHERE v.event_id = e.id "
            f"AND NOT EXISTS (SELECT 1 FROM {_KEPT} k WHERE k.event_id = e.id)"
        )
    engine = conn.engine
    replaced = f"{name}_archived"
    swap = (  # catalog changes only: the old table's files go in a transaction of their own, after
        f"ALTER TABLE events DETACH PARTITION {name}",
        f"ALTER TABLE {name} RENAME TO {replaced}",
        f"ALTER TABLE {trimmed} RENAME TO {name}",
        f"ALTER TABLE events ATTACH PARTITION {name} FOR VALUES {bounds}",
    )
    locked_ms = giving_way(lambda: _locked(engine, *swap))
    giving_way(
        lambda: _locked(engine, f"DROP TABLE {replaced}", f"ALTER TABLE {name} DROP CONSTRAINT {trimmed}_months")
    )
    reporter.note(f"{name}: {held - keeping} removed; the journal was locked {locked_ms:.0f} ms")


def _locked(engine: Engine, *statements: str) -> float:
    """The statements in one transaction, sent in one round trip, that waits for each lock at most
    ``SWAP_LOCK_WAIT``; how long it took from its first lock request to its commit (ms)."""
    with engine.begin() as conn:
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{SWAP_LOCK_WAIT}'")
        started = time.perf_counter()
        conn.exec_driver_sql("; ".join(statements))
    return (time.perf_counter() - started) * 1000


def _trim_rows(conn: Connection, table: str, before: datetime) -> None:
    """Delete what goes a batch at a time, each batch its versions then its rows, committed alone
    (a writer waits for one batch at most)."""
    going = _before(
        f"SELECT id FROM {table} WHERE received_at < :before "
        f"AND NOT EXISTS (SELECT 1 FROM {_KEPT} k WHERE k.event_id = {table}.id) LIMIT {TRIM_BATCH}"
    )
    while True:
        with conn.begin():
            ids = list(conn.execute(going, {"before": before}).scalars())
            if not ids:
                return
            conn.execute(Version.__table__.delete().where(Version.event_id.in_(ids)))
            conn.execute(Event.__table__.delete().where(Event.id.in_(ids), Event.received_at < before))
