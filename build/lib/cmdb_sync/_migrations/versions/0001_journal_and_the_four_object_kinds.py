"""journal and the four object kinds

Revision ID: 0001
Revises:
Create Date: 2026-11-29 09:05:33.178174
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "apps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("type", sa.String(), nullable=True),
        sa.Column("creator_id", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "purged_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="time of the newest App Delete ever received, stale ones included: children versioned before it count as deleted",
        ),
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column(
            "version_at", sa.DateTime(timezone=True), nullable=True, comment="time of the event that last set this row"
        ),
        sa.Column("version_id", sa.String(), nullable=True, comment="id of the event that last set this row"),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apps")),
        sa.UniqueConstraint("org_id", "name", name=op.f("uq_apps_org_id_name")),
    )
    op.create_table(
        "envs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app_name", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("display_name", sa.String(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("creator_id", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lock_by", sa.String(), nullable=True),
        sa.Column("resource_pool_name", sa.String(), nullable=True),
        sa.Column("deploy_group_name", sa.String(), nullable=True),
        sa.Column("replicas_management", sa.String(), nullable=True),
        sa.Column("rollout_strategy", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column(
            "version_at", sa.DateTime(timezone=True), nullable=True, comment="time of the event that last set this row"
        ),
        sa.Column("version_id", sa.String(), nullable=True, comment="id of the event that last set this row"),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_envs")),
        sa.UniqueConstraint("org_id", "app_name", "name", name=op.f("uq_envs_org_id_app_name_name")),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=True),
        sa.Column("app", sa.String(), nullable=True),
        sa.Column("org_id", sa.String(), nullable=True),
        sa.Column("actor_id", sa.String(), nullable=True),
        sa.Column(
            "time", sa.DateTime(timezone=True), nullable=True, comment="event time (body.time), UTC, ms precision"
        ),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False, comment="applied, stale, unsupported or failed"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=False, comment="request headers, token redacted"),
        sa.Column("body", sa.Text(), nullable=False, comment="raw request body, verbatim"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_app_received_at_id"), ["app", "received_at", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_kind_received_at_id"), ["kind", "received_at", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_received_at_id"), ["received_at", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_events_status_received_at_id"), ["status", "received_at", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_events_time_id"), ["time", "id"], unique=False)

    op.create_table(
        "orchestrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sn", sa.String(), nullable=False),
        sa.Column("app_name", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("storage_type", sa.String(), nullable=True),
        sa.Column("format", sa.String(), nullable=True),
        sa.Column("type", sa.String(), nullable=True),
        sa.Column("label_policy", sa.String(), nullable=True),
        sa.Column("suitable_resource_types", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("revision_sha", sa.String(), nullable=True),
        sa.Column("revision_message", sa.Text(), nullable=True),
        sa.Column("revision_author", sa.String(), nullable=True),
        sa.Column("revision_commit_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("creator_id", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("modifier_id", sa.String(), nullable=True),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column(
            "version_at", sa.DateTime(timezone=True), nullable=True, comment="time of the event that last set this row"
        ),
        sa.Column("version_id", sa.String(), nullable=True, comment="id of the event that last set this row"),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orchestrations")),
        sa.UniqueConstraint("org_id", "sn", name=op.f("uq_orchestrations_org_id_sn")),
    )
    with op.batch_alter_table("orchestrations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_orchestrations_org_id_app_name_sn"), ["org_id", "app_name", "sn"], unique=False
        )

    op.create_table(
        "variable_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "app_name", sa.String(), nullable=False, comment="X-AppStack-App of the event; '' for an org-level group"
        ),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("display_name", sa.String(), nullable=True),
        sa.Column("type", sa.String(), nullable=True),
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column(
            "version_at", sa.DateTime(timezone=True), nullable=True, comment="time of the event that last set this row"
        ),
        sa.Column("version_id", sa.String(), nullable=True, comment="id of the event that last set this row"),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_variable_groups")),
        sa.UniqueConstraint("org_id", "app_name", "name", name=op.f("uq_variable_groups_org_id_app_name_name")),
    )
    op.create_table(
        "components",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("orchestration_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("type", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(
            ["orchestration_id"],
            ["orchestrations.id"],
            name=op.f("fk_components_orchestration_id_orchestrations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_components")),
    )
    with op.batch_alter_table("components", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_components_orchestration_id"), ["orchestration_id"], unique=False)

    op.create_table(
        "env_labels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("env_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("namespace", sa.String(), nullable=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("value", sa.String(), nullable=True),
        sa.Column("display_name", sa.String(), nullable=True),
        sa.Column("display_value", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(["env_id"], ["envs.id"], name=op.f("fk_env_labels_env_id_envs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_env_labels")),
    )
    with op.batch_alter_table("env_labels", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_env_labels_env_id"), ["env_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_env_labels_name_value"), ["name", "value"], unique=False)

    op.create_table(
        "env_profiles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("env_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("display_name", sa.String(), nullable=True),
        sa.Column("type", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(["env_id"], ["envs.id"], name=op.f("fk_env_profiles_env_id_envs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_env_profiles")),
    )
    with op.batch_alter_table("env_profiles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_env_profiles_env_id"), ["env_id"], unique=False)

    op.create_table(
        "orchestration_labels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("orchestration_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("namespace", sa.String(), nullable=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("value", sa.String(), nullable=True),
        sa.Column("display_name", sa.String(), nullable=True),
        sa.Column("display_value", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(
            ["orchestration_id"],
            ["orchestrations.id"],
            name=op.f("fk_orchestration_labels_orchestration_id_orchestrations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orchestration_labels")),
    )
    with op.batch_alter_table("orchestration_labels", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_orchestration_labels_orchestration_id"), ["orchestration_id"], unique=False
        )

    op.create_table(
        "placeholders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("orchestration_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("type", sa.String(), nullable=True),
        sa.Column("value", sa.JSON(none_as_null=True), nullable=True, comment="as sent: usually a string"),
        sa.Column("overridable", sa.Boolean(), nullable=True),
        sa.Column("rule", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("value_source", sa.String(), nullable=True),
        sa.Column("predefined", sa.Boolean(), nullable=True),
        sa.Column("rs_type", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(
            ["orchestration_id"],
            ["orchestrations.id"],
            name=op.f("fk_placeholders_orchestration_id_orchestrations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_placeholders")),
    )
    with op.batch_alter_table("placeholders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_placeholders_orchestration_id"), ["orchestration_id"], unique=False)

    op.create_table(
        "variables",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["group_id"], ["variable_groups.id"], name=op.f("fk_variables_group_id_variable_groups"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_variables")),
    )
    with op.batch_alter_table("variables", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_variables_group_id"), ["group_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("variables", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_variables_group_id"))

    op.drop_table("variables")
    with op.batch_alter_table("placeholders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_placeholders_orchestration_id"))

    op.drop_table("placeholders")
    with op.batch_alter_table("orchestration_labels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orchestration_labels_orchestration_id"))

    op.drop_table("orchestration_labels")
    with op.batch_alter_table("env_profiles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_env_profiles_env_id"))

    op.drop_table("env_profiles")
    with op.batch_alter_table("env_labels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_env_labels_name_value"))
        batch_op.drop_index(batch_op.f("ix_env_labels_env_id"))

    op.drop_table("env_labels")
    with op.batch_alter_table("components", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_components_orchestration_id"))

    op.drop_table("components")
    op.drop_table("variable_groups")
    with op.batch_alter_table("orchestrations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orchestrations_org_id_app_name_sn"))

    op.drop_table("orchestrations")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_time_id"))
        batch_op.drop_index(batch_op.f("ix_events_status_received_at_id"))
        batch_op.drop_index(batch_op.f("ix_events_received_at_id"))
        batch_op.drop_index(batch_op.f("ix_events_kind_received_at_id"))
        batch_op.drop_index(batch_op.f("ix_events_app_received_at_id"))

    op.drop_table("events")
    op.drop_table("envs")
    op.drop_table("apps")
