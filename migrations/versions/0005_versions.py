"""versions: every snapshot received for an object, for history and as-of reads

A database that already holds a journal fills its versions with ``cmdb-sync replay --rebuild``
(README, "History and as-of reads").

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "versions",
        sa.Column("event_id", sa.String(), nullable=False, comment="the journaled event (events.id)"),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column("app_name", sa.String(), nullable=False, comment="the owning app; '' for none"),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False, comment="a Delete: the object's tombstone"),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_versions")),
    )
    op.create_index(
        op.f("ix_versions_kind_app_name_name_org_id_time_event_id"),
        "versions",
        ["kind", "app_name", "name", "org_id", "time", "event_id"],
    )
    op.create_index(op.f("ix_versions_time_event_id"), "versions", ["time", "event_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_versions_time_event_id"), table_name="versions")
    op.drop_index(op.f("ix_versions_kind_app_name_name_org_id_time_event_id"), table_name="versions")
    op.drop_table("versions")
