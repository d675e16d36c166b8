"""label statistics: the planner learns that a label's name and value go together

A label filter (``envType=production``) is estimated from ``name`` and ``value`` as if they were
independent, which underestimates its matches several times over; the planner then sorts every
matching env instead of walking the env index in cursor order and stopping at the page's end
(155 ms against 2 ms on 100,000 envs). PostgreSQL only; SQLite has no such statistics.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE STATISTICS st_env_labels_name_value (mcv, dependencies) ON name, value FROM env_labels")
        op.execute("ANALYZE env_labels")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP STATISTICS IF EXISTS st_env_labels_name_value")
