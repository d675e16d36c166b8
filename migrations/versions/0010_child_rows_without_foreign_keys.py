"""child rows keep their parent's id without a foreign key

Every child row (an env's labels and profiles, a group's variables, an orchestration's labels,
placeholders and components, a change order's jobs, their stages, their tasks) is written by the
batch projector alone, with the id its parent's upsert returned in the same transaction, and is
deleted with the rows below it when its parent's children are replaced (``bulk.delete_children``).
The foreign keys only checked that again, one query per row inserted (PostgreSQL's
``RI_FKey_check`` trigger: 3.5 s of PostgreSQL's 22 s over an import of 200,000 events; the
import 9% faster without them, median of seven alternated runs), and deleted a job's stages and
tasks by cascade, which the projector now does set-based. Going down deletes any row whose parent
is gone, then puts the keys back.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (child table, its parent's id column, the parent table), deepest first: on SQLite a table's
# keys are dropped by copying it to a new table, and dropping a table that another one's key
# still refers to would delete that one's rows by cascade
KEYS = [
    ("change_order_tasks", "stage_id", "change_order_stages"),
    ("change_order_stages", "job_id", "change_order_jobs"),
    ("change_order_jobs", "change_order_id", "change_orders"),
    ("components", "orchestration_id", "orchestrations"),
    ("placeholders", "orchestration_id", "orchestrations"),
    ("orchestration_labels", "orchestration_id", "orchestrations"),
    ("variables", "group_id", "variable_groups"),
    ("env_profiles", "env_id", "envs"),
    ("env_labels", "env_id", "envs"),
]


def _name(child: str, column: str, parent: str) -> str:
    return f"fk_{child}_{column}_{parent}"


def upgrade() -> None:
    for child, column, parent in KEYS:
        with op.batch_alter_table(child) as batch:
            batch.drop_constraint(_name(child, column, parent), type_="foreignkey")


def downgrade() -> None:
    # parents first: a parent's orphans are gone before its children are checked against it, and
    # on SQLite no table is copied while another one's key refers to it
    for child, column, parent in reversed(KEYS):
        op.execute(f'DELETE FROM "{child}" WHERE "{column}" NOT IN (SELECT id FROM "{parent}")')
        with op.batch_alter_table(child) as batch:
            batch.create_foreign_key(_name(child, column, parent), parent, [column], ["id"], ondelete="CASCADE")
