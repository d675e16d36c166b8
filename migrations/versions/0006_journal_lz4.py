"""journal bodies compressed with lz4 on PostgreSQL

Bodies are JSON text of a few kilobytes, stored out of line once large: lz4 compresses them about
as well as the default pglz and several times faster. Rows written before this migration keep
their pglz compression until they are rewritten. SQLite has no column compression.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE events ALTER COLUMN body SET COMPRESSION lz4")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE events ALTER COLUMN body SET COMPRESSION pglz")
