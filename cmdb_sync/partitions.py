"""The journal's monthly partitions on PostgreSQL: made ahead of the deliveries that need them.

``events`` is partitioned by ``received_at``, a partition a month (``events_2026_11``), with a
default partition for a delivery whose month has none (an import of old deliveries, a server that
was down for months). ``serve`` and ``db upgrade`` make the months up to ``MONTHS_AHEAD`` ahead;
a month made for rows that sit in the default partition takes them out of it. A partition is
made beside the table and attached, which does not hold deliveries up (``ATTACH`` takes a lock
that inserts pass); a moment's wait on the default partition is bounded by ``BRIEF_LOCK_WAIT``.
SQLite has one journal table and nothing to do here.
"""

from __future__ import annotations

import logging
import re
import threading
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from cmdb_sync.db import BRIEF_LOCK_WAIT, describe_error

log = logging.getLogger(__name__)

MONTHS_AHEAD = 2
KEEP_EVERY_SECONDS = 6 * 3600
DUPLICATE_TABLE = "42P07"
DEFAULT_PARTITION = "events_default"
_PARTITION_NAME = re.compile(r"^events_(\d{4})_(\d{2})$")


def is_journal_partition(name: str) -> bool:
    """A partition of the journal: not a table of the models (migrations' comparisons skip them)."""
    return name == DEFAULT_PARTITION or _PARTITION_NAME.match(name) is not None


def not_a_partition(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's ``include_name``: the journal's monthly partitions are made at run time, not by the models."""
    return not (type_ == "table" and name is not None and is_journal_partition(name))


def month_of(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def add_months(month: datetime, count: int) -> datetime:
    index = month.year * 12 + month.month - 1 + count
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition_name(month: datetime) -> str:
    return f"events_{month:%Y_%m}"


def partitioned(conn: Connection) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    sql = "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'public.events'::regclass)"
    return bool(conn.exec_driver_sql(sql).scalar())


def monthly_partitions(conn: Connection) -> dict[datetime, str]:
    """The journal's month partitions, by month."""
    sql = (
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'public.events'::regclass"
    )
    months = {}
    for (name,) in conn.exec_driver_sql(sql):
        matched = _PARTITION_NAME.match(name)
        if matched:
            months[datetime(int(matched[1]), int(matched[2]), 1, tzinfo=UTC)] = name
    return months


def ensure_partitions(engine: Engine, *, now: datetime | None = None, ahead: int = MONTHS_AHEAD) -> list[str]:
    """Make the month partitions from the current month to ``ahead`` months on, and those of
    months whose deliveries sit in the default partition; the names made. A month that cannot
    get its lock in time is left for the next call (its deliveries go to the default partition
    meanwhile, and nothing is lost)."""
    made: list[str] = []
    with engine.connect() as conn:
        if not partitioned(conn):
            return made
        held = monthly_partitions(conn)
        current = month_of(now or datetime.now(UTC))
        wanted = {add_months(current, step) for step in range(ahead + 1)}
        in_default = conn.exec_driver_sql(
            f"SELECT DISTINCT date_trunc('month', received_at AT TIME ZONE 'UTC') FROM {DEFAULT_PARTITION}"
        ).scalars()
        wanted |= {moment.replace(tzinfo=UTC) for moment in in_default}
        conn.rollback()
    for month in sorted(wanted - held.keys()):
        try:
            with engine.begin() as conn:
                _make_partition(conn, month)
            made.append(partition_name(month))
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == DUPLICATE_TABLE:  # another process made it
                continue
            log.warning("journal partition %s not made yet: %s", partition_name(month), describe_error(exc))
    return made


def keep_months_ahead(engine: Engine, stop: threading.Event) -> threading.Thread:
    """A thread of the server that makes the coming months' partitions now and every few hours."""

    def keep() -> None:
        while True:
            try:
                made = ensure_partitions(engine)
                if made:
                    log.info("journal partitions made: %s", ", ".join(made))
            except DBAPIError as exc:
                log.warning("journal partitions not checked: %s", describe_error(exc))
            if stop.wait(KEEP_EVERY_SECONDS):
                return

    thread = threading.Thread(target=keep, name="cmdb-sync-journal-months", daemon=True)
    thread.start()
    return thread


def _make_partition(conn: Connection, month: datetime) -> None:
    name = partition_name(month)
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{BRIEF_LOCK_WAIT}'")
    bounds = month_table(conn, name, month)
    conn.exec_driver_sql(
        f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE {month_condition(month)} RETURNING *) "
        f"INSERT INTO {name} SELECT * FROM moved"
    )
    conn.exec_driver_sql(f"ALTER TABLE events ATTACH PARTITION {name} FOR VALUES {bounds}")
    conn.exec_driver_sql(f"ALTER TABLE {name} DROP CONSTRAINT {name}_months")


def month_condition(month: datetime) -> str:
    return f"received_at >= '{month.isoformat()}' AND received_at < '{add_months(month, 1).isoformat()}'"


def month_table(conn: Connection, table: str, month: datetime) -> str:
    """A table like the journal, to become the partition of ``month``: its indexes made already, so
    that ATTACH adopts them rather than building them under its lock, and a constraint
    ``{table}_months`` on the month's range, which spares ATTACH a scan of the table (drop it once
    attached). Returns the partition bound, for ``ATTACH PARTITION ... FOR VALUES``."""
    conn.exec_driver_sql(f"CREATE TABLE {table} (LIKE events INCLUDING ALL)")
    conn.exec_driver_sql(f"ALTER TABLE {table} ADD CONSTRAINT {table}_months CHECK ({month_condition(month)})")
    return f"FROM ('{month.isoformat()}') TO ('{add_months(month, 1).isoformat()}')"
