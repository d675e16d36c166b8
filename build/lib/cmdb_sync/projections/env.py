"""Env events: the environment, its labels and its profiles (variable groups it uses)."""

from __future__ import annotations

from cmdb_sync.events import EnvAttrs, Envelope, parse_attributes
from cmdb_sync.models import Env, EnvLabel, EnvProfile
from cmdb_sync.projections.common import Children, Listed, Projection, Snapshot, label_rows, owning_app


def snapshot(envelope: Envelope) -> Snapshot:
    attrs = parse_attributes(EnvAttrs, envelope.attributes)
    org_id, app_name = owning_app(
        envelope, attrs.app_name or envelope.app, "objectAttributes.appName or X-AppStack-App"
    )
    spec = attrs.spec
    return Snapshot(
        values={
            "org_id": org_id,
            "app_name": app_name,
            "name": attrs.name,
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
        children=(
            Children(EnvLabel.__table__, label_rows(attrs.label_list)),
            Children(
                EnvProfile.__table__,
                [{"name": p.name, "display_name": p.display_name, "type": p.type} for p in attrs.profiles or ()],
            ),
        ),
        app=(org_id, app_name),
    )


PROJECTION = Projection(
    kind="Env",
    model=Env,
    snapshot=snapshot,
    children=(EnvLabel.__table__, EnvProfile.__table__),
    app_path=("appName",),
    listed=Listed(
        key=lambda env: (env.app_name, env.name), tombstone=lambda env: {"name": env.name, "appName": env.app_name}
    ),
)
