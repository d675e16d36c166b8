"""the artifact filter's trigram index (PostgreSQL, pg_trgm)

``artifact=`` searches every successful job's artifacts with ILIKE '%...%': without an index
PostgreSQL reads every job (5 ms on 10,000 jobs, growing with them). A GIN trigram index serves
the search. pg_trgm ships with PostgreSQL's contrib modules and is a trusted extension (the
database's owner may create it); where it cannot be created, the migration says so and goes on
without the index: the filter still answers, by scanning. SQLite: nothing.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from alembic import op
from sqlalchemy.exc import DBAPIError

from cmdb_sync.models import ARTIFACT_SEARCH_INDEX, create_artifact_search_index

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("cmdb_sync.migrations")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    try:
        with bind.begin_nested():
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DBAPIError as exc:
        log.warning(
            "the artifact filter's index was not made (the pg_trgm extension could not be created: %s); "
            "artifact= still answers, by reading every job",
            str(exc.orig).strip().splitlines()[0],
        )
        return
    create_artifact_search_index(bind)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {ARTIFACT_SEARCH_INDEX}")
