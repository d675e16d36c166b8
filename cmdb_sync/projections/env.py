"""Env events: the environment, its labels and its profiles (variable groups it uses)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cmdb_sync.events import EnvAttrs, Envelope, parse_attributes
from cmdb_sync.models import Env, EnvLabel, EnvProfile
from cmdb_sync.projections.common import (
    APPLIED,
    SNAPSHOT_ACTIONS,
    STALE,
    Projection,
    apply_snapshot,
    ensure_app,
    label_rows,
    replace_children,
    require_app,
    require_org,
)


def apply(session: Session, envelope: Envelope) -> str:
    attrs = parse_attributes(EnvAttrs, envelope.attributes)
    org_id = require_org(envelope)
    app_name = require_app(attrs.app_name or envelope.app, "objectAttributes.appName or X-AppStack-App")
    ensure_app(session, org_id, app_name)
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
        return STALE
    replace_children(session, EnvLabel.__table__, "env_id", env_id, label_rows(attrs.label_list))
    replace_children(
        session,
        EnvProfile.__table__,
        "env_id",
        env_id,
        [{"name": p.name, "display_name": p.display_name, "type": p.type} for p in attrs.profiles or ()],
    )
    return APPLIED


PROJECTION = Projection(actions=SNAPSHOT_ACTIONS, apply=apply)
