"""Env events: the environment, its labels and its profiles (variable groups it uses)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cmdb_sync.events import EnvAttrs, Envelope, parse_attributes
from cmdb_sync.models import Env, EnvLabel, EnvProfile
from cmdb_sync.projections.common import Listed, Projection, apply_snapshot, label_rows, owning_app, replace_children
from cmdb_sync.status import Status


def apply(session: Session, envelope: Envelope) -> Status:
    attrs = parse_attributes(EnvAttrs, envelope.attributes)
    org_id, app_name = owning_app(
        session, envelope, attrs.app_name or envelope.app, "objectAttributes.appName or X-AppStack-App"
    )
    spec = attrs.spec
    env_id = apply_snapshot(
        session,
        Env.__table__,
        envelope,
        {"org_id": org_id, "app_name": app_name, "name": attrs.name},
        {
            "display_name": attrs.display_name,
            "description": attrs.description,
            "creator_id": attrs.creator_id,
            "created_at": attrs.gmt_create,
            "lock_by": attrs.lock_by,
            "resource_pool_name": attrs.resource_pool_name,
            "deploy_group_name": attrs.deploy_group_name,
            "replicas_management": spec.replicas_management if spec else None,
            "rollout_strategy": spec.rollout_strategy if spec else None,
        },
    )
    if env_id is None:
        return Status.STALE
    replace_children(session, EnvLabel.__table__, "env_id", env_id, label_rows(attrs.label_list))
    replace_children(
        session,
        EnvProfile.__table__,
        "env_id",
        env_id,
        [{"name": p.name, "display_name": p.display_name, "type": p.type} for p in attrs.profiles or ()],
    )
    return Status.APPLIED


PROJECTION = Projection(
    kind="Env",
    model=Env,
    apply=apply,
    children=(EnvLabel.__table__, EnvProfile.__table__),
    app_path=("appName",),
    listed=Listed(
        key=lambda env: (env.app_name, env.name), tombstone=lambda env: {"name": env.name, "appName": env.app_name}
    ),
)
