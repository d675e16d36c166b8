"""ChangeRequest events: a change's branch and state as it moves through its workflow."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cmdb_sync.events import ChangeRequestAttrs, Envelope, parse_attributes
from cmdb_sync.models import ChangeRequest
from cmdb_sync.projections.common import Projection, applied_if, apply_snapshot, owning_app
from cmdb_sync.status import Status


def apply(session: Session, envelope: Envelope) -> Status:
    attrs = parse_attributes(ChangeRequestAttrs, envelope.attributes)
    org_id, app_name = owning_app(
        session, envelope, attrs.app_name or envelope.app, "objectAttributes.appName or X-AppStack-App"
    )
    repo = attrs.app_code_repo or attrs.ext_info
    row_id = apply_snapshot(
        session,
        ChangeRequest.__table__,
        envelope,
        {"org_id": org_id, "sn": attrs.sn},
        {
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
    )
    return applied_if(row_id)


PROJECTION = Projection(
    kind="ChangeRequest",
    model=ChangeRequest,
    actions=frozenset({"Create", "StatusUpdate"}),
    apply=apply,
    app_path=("appName",),
    default_action="StatusUpdate",
)
