"""history kinds and read indexes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 09:15:48.787251
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("env_labels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_env_labels_env_id"))
        batch_op.create_index(batch_op.f("ix_env_labels_env_id_name_value"), ["env_id", "name", "value"], unique=False)

    op.create_table(
        "change_orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sn", sa.String(), nullable=False),
        sa.Column("app_name", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("type", sa.String(), nullable=True),
        sa.Column("version", sa.String(), nullable=True),
        sa.Column("tag", sa.String(), nullable=True),
        sa.Column("state", sa.String(), nullable=True),
        sa.Column("source_type", sa.String(), nullable=True),
        sa.Column("source_sn", sa.String(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("creator_id", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column(
            "version_at", sa.DateTime(timezone=True), nullable=True, comment="time of the event that last set this row"
        ),
        sa.Column("version_id", sa.String(), nullable=True, comment="id of the event that last set this row"),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_orders")),
        sa.UniqueConstraint("org_id", "sn", name=op.f("uq_change_orders_org_id_sn")),
    )
    with op.batch_alter_table("change_orders", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_change_orders_org_id_app_name_started_at_id"),
            ["org_id", "app_name", "started_at", "id"],
            unique=False,
        )

    op.create_table(
        "change_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sn", sa.String(), nullable=False),
        sa.Column("app_name", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("state", sa.String(), nullable=True),
        sa.Column("type", sa.String(), nullable=True),
        sa.Column("branch", sa.String(), nullable=True),
        sa.Column("origin_branch", sa.String(), nullable=True),
        sa.Column("origin_branch_revision", sa.String(), nullable=True),
        sa.Column("owner_id", sa.String(), nullable=True),
        sa.Column("repo_url", sa.String(), nullable=True),
        sa.Column("creator_id", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column(
            "version_at", sa.DateTime(timezone=True), nullable=True, comment="time of the event that last set this row"
        ),
        sa.Column("version_id", sa.String(), nullable=True, comment="id of the event that last set this row"),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_requests")),
        sa.UniqueConstraint("org_id", "sn", name=op.f("uq_change_requests_org_id_sn")),
    )
    with op.batch_alter_table("change_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_change_requests_org_id_app_name_sn"), ["org_id", "app_name", "sn"], unique=False
        )

    op.create_table(
        "release_stage_executions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("release_workflow_sn", sa.String(), nullable=False),
        sa.Column("release_stage_sn", sa.String(), nullable=False),
        sa.Column("engine_instance_id", sa.String(), nullable=False),
        sa.Column("app_name", sa.String(), nullable=True, comment="X-AppStack-App of the event"),
        sa.Column("state", sa.String(), nullable=True),
        sa.Column("trigger_mode", sa.String(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column(
            "version_at", sa.DateTime(timezone=True), nullable=True, comment="time of the event that last set this row"
        ),
        sa.Column("version_id", sa.String(), nullable=True, comment="id of the event that last set this row"),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_release_stage_executions")),
        sa.UniqueConstraint(
            "org_id",
            "release_workflow_sn",
            "release_stage_sn",
            "engine_instance_id",
            name=op.f("uq_release_stage_executions_org_id_release_workflow_sn_release_stage_sn_engine_instance_id"),
        ),
    )
    with op.batch_alter_table("release_stage_executions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_release_stage_executions_release_workflow_sn_release_stage_sn_id"),
            ["release_workflow_sn", "release_stage_sn", "id"],
            unique=False,
        )

    op.create_table(
        "change_order_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("change_order_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column("app_name", sa.String(), nullable=False),
        sa.Column("env_name", sa.String(), nullable=True),
        sa.Column("sn", sa.String(), nullable=True),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("state", sa.String(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("artifacts", sa.JSON(), nullable=False, comment="the artifacts of the job's tasks, merged in order"),
        sa.Column(
            "artifacts_text",
            sa.Text(),
            nullable=False,
            comment="artifact values, one a line: what the artifact filter searches",
        ),
        sa.ForeignKeyConstraint(
            ["change_order_id"],
            ["change_orders.id"],
            name=op.f("fk_change_order_jobs_change_order_id_change_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_order_jobs")),
    )
    with op.batch_alter_table("change_order_jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_change_order_jobs_change_order_id"), ["change_order_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_change_order_jobs_org_id_app_name_env_name_state_ended_at"),
            ["org_id", "app_name", "env_name", "state", "ended_at"],
            unique=False,
        )

    op.create_table(
        "change_order_stages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("sn", sa.String(), nullable=True),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("state", sa.String(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["change_order_jobs.id"],
            name=op.f("fk_change_order_stages_job_id_change_order_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_order_stages")),
    )
    with op.batch_alter_table("change_order_stages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_change_order_stages_job_id"), ["job_id"], unique=False)

    op.create_table(
        "change_order_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stage_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("sn", sa.String(), nullable=True),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("locator", sa.String(), nullable=True),
        sa.Column("state", sa.String(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "artifacts",
            sa.JSON(),
            nullable=False,
            comment="contextContent.artifacts, parsed ({} when absent or unparseable)",
        ),
        sa.Column(
            "error_messages", sa.JSON(), nullable=False, comment="engineTaskResultContent.taskErrorMessages, parsed"
        ),
        sa.Column("strategy", sa.JSON(none_as_null=True), nullable=True, comment="strategyContent, parsed"),
        sa.Column("deliveries", sa.Text(), nullable=True, comment="rendered manifests, as sent"),
        sa.Column("spec", sa.Text(), nullable=True, comment="rendered manifests with AppStack labels, as sent"),
        sa.ForeignKeyConstraint(
            ["stage_id"],
            ["change_order_stages.id"],
            name=op.f("fk_change_order_tasks_stage_id_change_order_stages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_order_tasks")),
    )
    with op.batch_alter_table("change_order_tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_change_order_tasks_stage_id"), ["stage_id"], unique=False)

    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_apps_name_org_id"), ["name", "org_id"], unique=False)

    with op.batch_alter_table("envs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_envs_app_name_name_org_id"), ["app_name", "name", "org_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("env_labels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_env_labels_env_id_name_value"))
        batch_op.create_index(batch_op.f("ix_env_labels_env_id"), ["env_id"], unique=False)

    with op.batch_alter_table("envs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_envs_app_name_name_org_id"))

    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_apps_name_org_id"))

    with op.batch_alter_table("change_order_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_change_order_tasks_stage_id"))

    op.drop_table("change_order_tasks")
    with op.batch_alter_table("change_order_stages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_change_order_stages_job_id"))

    op.drop_table("change_order_stages")
    with op.batch_alter_table("change_order_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_change_order_jobs_org_id_app_name_env_name_state_ended_at"))
        batch_op.drop_index(batch_op.f("ix_change_order_jobs_change_order_id"))

    op.drop_table("change_order_jobs")
    with op.batch_alter_table("release_stage_executions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_release_stage_executions_release_workflow_sn_release_stage_sn_id"))

    op.drop_table("release_stage_executions")
    with op.batch_alter_table("change_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_change_requests_org_id_app_name_sn"))

    op.drop_table("change_requests")
    with op.batch_alter_table("change_orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_change_orders_org_id_app_name_started_at_id"))

    op.drop_table("change_orders")
