"""the journal by received month: event_ids, journal_archives, and on PostgreSQL a partitioned journal

``event_ids`` holds every delivery id ever journaled, so a delivery sent again is a duplicate even
after its month was archived; on PostgreSQL it is also the only place an id can be unique, since a
partitioned table's key must hold the partition column. ``journal_archives`` records each
``cmdb-sync journal archive``.

On PostgreSQL the journal becomes a table partitioned by ``received_at``, one partition a month
(``events_2026_11``), from the oldest delivery's month to two months ahead, and a default partition
for a delivery whose month has none yet (``serve`` keeps months ahead). The rows are copied: on a
large journal this migration takes the time of one copy of it; the server should be stopped.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from cmdb_sync.partitions import add_months, month_of

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {  # name: columns, as the models name them
    "ix_events_time_id": "time, id",
    "ix_events_received_at_id": "received_at, id",
    "ix_events_status_received_at_id": "status, received_at, id",
    "ix_events_kind_received_at_id": "kind, received_at, id",
    "ix_events_app_received_at_id": "app, received_at, id",
}
MONTHS_AHEAD = 2


def upgrade() -> None:
    op.create_table(
        "event_ids",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="when it was first received (its journal month)",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_ids")),
    )
    op.create_table(
        "journal_archives",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "before",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="deliveries received before this moment were archived",
        ),
        sa.Column(
            "horizon",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="the newest event time archived: as-of reads before it are refused",
        ),
        sa.Column("file", sa.Text(), nullable=False, comment="where the archive was written"),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("archived", sa.Integer(), nullable=False, comment="deliveries written to the file"),
        sa.Column("kept", sa.Integer(), nullable=False, comment="of those, kept in the journal as last snapshots"),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "finished_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="when the journal was trimmed; null while an archive is under way",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal_archives")),
    )
    op.execute("INSERT INTO event_ids (id, received_at) SELECT id, received_at FROM events")
    if op.get_bind().dialect.name == "postgresql":
        _partition()


def _set_aside(aside: str, key: str, partitioning: str = "") -> None:
    """The journal renamed ``events_{aside}`` (its key and indexes too), and ``events`` made anew
    like it, with ``key`` as its primary key, and its indexes."""
    op.execute(f"ALTER TABLE events RENAME TO events_{aside}")
    op.execute(f"ALTER TABLE events_{aside} RENAME CONSTRAINT pk_events TO pk_events_{aside}")
    for name in INDEXES:
        op.execute(f"ALTER INDEX {name} RENAME TO {name}_{aside}")
    op.execute(
        f"CREATE TABLE events (LIKE events_{aside} INCLUDING DEFAULTS INCLUDING COMMENTS "
        f"INCLUDING COMPRESSION, CONSTRAINT pk_events PRIMARY KEY ({key})) {partitioning}"
    )
    for name, columns in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON events ({columns})")


def _partition() -> None:
    _set_aside("unpartitioned", "id, received_at", "PARTITION BY RANGE (received_at)")
    oldest = op.get_bind().exec_driver_sql("SELECT min(received_at) FROM events_unpartitioned").scalar()
    now = datetime.now(UTC)
    month = month_of(oldest or now)
    last = add_months(month_of(now), MONTHS_AHEAD)
    while month <= last:
        after = add_months(month, 1)
        op.execute(
            f"CREATE TABLE events_{month:%Y_%m} PARTITION OF events "
            f"FOR VALUES FROM ('{month.isoformat()}') TO ('{after.isoformat()}')"
        )
        month = after
    op.execute("CREATE TABLE events_default PARTITION OF events DEFAULT")
    op.execute("INSERT INTO events SELECT * FROM events_unpartitioned")
    op.execute("DROP TABLE events_unpartitioned")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _set_aside("partitioned", "id")
        op.execute("INSERT INTO events SELECT * FROM events_partitioned")
        op.execute("DROP TABLE events_partitioned")
    op.drop_table("journal_archives")
    op.drop_table("event_ids")
