"""backfill runs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 09:27:34.506387
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "backfill_runs",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column("scope", sa.String(), nullable=False, comment="the app it was limited to, or '' for the whole org"),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="objects not seen since this time are gone from the source",
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_apps", sa.JSON(), nullable=False, comment="apps whose objects are all ingested"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backfill_runs")),
    )
    with op.batch_alter_table("backfill_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_backfill_runs_org_id_scope_finished_at"), ["org_id", "scope", "finished_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("backfill_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backfill_runs_org_id_scope_finished_at"))

    op.drop_table("backfill_runs")
