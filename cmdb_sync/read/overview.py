"""What the web UI's apps page shows beside each app: how many envs it has, and its latest
deployment. One query each for a whole page of apps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from cmdb_sync.models import App, ChangeOrder, Env
from cmdb_sync.read.visibility import owned_by, visible


@dataclass(frozen=True)
class LatestDeployment:
    sn: str
    state: str | None
    version: str | None
    started_at: datetime | None


@dataclass(frozen=True)
class AppSummary:
    envs: int
    latest: LatestDeployment | None


def app_summaries(session: Session, apps: Sequence[Any]) -> dict[tuple[str, str], AppSummary]:
    """For each ``(org_id, name)`` of ``apps``: its visible envs, and its newest change order."""
    keys = sorted({(app.org_id, app.name) for app in apps})
    if not keys:
        return {}
    counts = {
        (org_id, app_name): count
        for org_id, app_name, count in session.execute(
            select(Env.org_id, Env.app_name, func.count())
            .join(App, owned_by(Env))
            .where(visible(Env), tuple_(Env.org_id, Env.app_name).in_(keys))
            .group_by(Env.org_id, Env.app_name)
        )
    }
    sort = func.coalesce(ChangeOrder.started_at, ChangeOrder.version_at)
    ranked = (
        select(
            ChangeOrder.org_id,
            ChangeOrder.app_name,
            ChangeOrder.sn,
            ChangeOrder.state,
            ChangeOrder.version,
            sort.label("started_at"),
            func.row_number()
            .over(
                partition_by=[ChangeOrder.org_id, ChangeOrder.app_name], order_by=[sort.desc(), ChangeOrder.sn.desc()]
            )
            .label("rank"),
        )
        .where(tuple_(ChangeOrder.org_id, ChangeOrder.app_name).in_(keys))
        .subquery()
    )
    latest = {
        (row.org_id, row.app_name): LatestDeployment(row.sn, row.state, row.version, row.started_at)
        for row in session.execute(select(ranked).where(ranked.c.rank == 1))
    }
    return {key: AppSummary(counts.get(key, 0), latest.get(key)) for key in keys}
