"""rebuild_runs: where a `replay --rebuild` stands, so a stopped one continues

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rebuild_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("untimed_after", sa.String(), nullable=True, comment="the last event without a time replayed"),
        sa.Column(
            "timed_after_time",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="the last timed event replayed: its time",
        ),
        sa.Column("timed_after_id", sa.String(), nullable=True, comment="... and its id"),
        sa.Column("done", sa.Integer(), nullable=False, comment="events replayed so far"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rebuild_runs")),
    )


def downgrade() -> None:
    op.drop_table("rebuild_runs")
