"""ChangeRequest events: a change's branch and state as it moves through its workflow."""

from __future__ import annotations

from cmdb_sync.events import ChangeRequestAttrs, Envelope, parse_attributes
from cmdb_sync.models import ChangeRequest
from cmdb_sync.projections.common import Projection, Snapshot, owning_app


def snapshot(envelope: Envelope) -> Snapshot:
    attrs = parse_attributes(ChangeRequestAttrs, envelope.attributes)
    org_id, app_name = owning_app(
        envelope, attrs.app_name or envelope.app, "objectAttributes.appName or X-AppStack-App"
    )
    repo = attrs.app_code_repo or attrs.ext_info
    return Snapshot(
        values={
            "org_id": org_id,
            "sn": attrs.sn,
            "app_name": app_name,
            "name": attrs.name,
            "state": attrs.state,
            "type": attrs.type,
            "branch": attrs.branch,
            "origin_branch": attrs.origin_branch,
            "origin_branch_revision": attrs.origin_branch_revision,
            "owner_id": attrs.owner_id,
            "repo_url": repo.repo_url if repo else None,
            "creator_id": attrs.creator_id,
            "created_at": attrs.gmt_create,
        },
        app=(org_id, app_name),
    )


PROJECTION = Projection(
    kind="ChangeRequest",
    model=ChangeRequest,
    snapshot=snapshot,
    actions=frozenset({"Create", "StatusUpdate"}),
    app_path=("appName",),
    default_action="StatusUpdate",
)
