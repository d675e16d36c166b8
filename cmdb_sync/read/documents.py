"""Responses whose JSON PostgreSQL builds itself, for the most read routes (an env, a page of
envs): one query instead of four, and no Python object per row or per label. The documents are
the same as the views' (``views.EnvOut``): the suite compares them on both databases, since
SQLite answers through the views.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Text, cast, func, literal_column, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from cmdb_sync.models import ChangeOrder, ChangeOrderJob, Env, EnvLabel, EnvProfile
from cmdb_sync.read.deployments import SUCCESS, newest_first
from cmdb_sync.read.visibility import effective_deleted_at

ISO_UTC = 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'  # times.iso_utc, in to_char's words


@dataclass(frozen=True)
class Serialized:
    """A JSON answer already encoded."""

    body: bytes

    @classmethod
    def page(cls, documents: Sequence[str], next_cursor: str | None) -> Serialized:
        items = ",".join(documents)
        return cls(f'{{"items":[{items}],"next_cursor":{json.dumps(next_cursor)}}}'.encode())


def _iso(column: Any) -> ColumnElement[Any]:
    return func.to_char(func.timezone("UTC", column), ISO_UTC)


def _json_list(*pairs: Any, order: Any, where: Any) -> Any:
    row = func.json_build_object(*pairs)
    return (
        select(func.coalesce(func.json_agg(aggregate_order_by(row, order)), literal_column("'[]'::json")))
        .where(where)
        .correlate(Env)
        .scalar_subquery()
    )


@cache
def env_document() -> ColumnElement[Any]:
    """An env as ``EnvOut`` serialises it, as JSON text; the query must join its App (for the
    deletion rules), as every env query does."""
    labels = _json_list(
        "namespace", EnvLabel.namespace, "name", EnvLabel.name, "value", EnvLabel.value,
        "display_name", EnvLabel.display_name, "display_value", EnvLabel.display_value,
        order=EnvLabel.position, where=EnvLabel.env_id == Env.id,
    )  # fmt: skip
    profiles = _json_list(
        "name", EnvProfile.name, "display_name", EnvProfile.display_name, "type", EnvProfile.type,
        order=EnvProfile.position, where=EnvProfile.env_id == Env.id,
    )  # fmt: skip
    job = aliased(ChangeOrderJob)
    deployment = (
        select(
            func.json_build_object(
                "change_order_sn",
                ChangeOrder.sn,
                "version",
                ChangeOrder.version,
                "artifacts",
                func.coalesce(job.artifacts, literal_column("'{}'::json")),
                "ended_at",
                _iso(job.ended_at),
            )  # fmt: skip
        )
        .select_from(job)
        .join(ChangeOrder, ChangeOrder.id == job.change_order_id)
        .where(job.org_id == Env.org_id, job.app_name == Env.app_name, job.env_name == Env.name, job.state == SUCCESS)
        .order_by(*newest_first(job))
        .limit(1)
        .correlate(Env)
        .scalar_subquery()
    )
    document = func.json_build_object(
        "org_id", Env.org_id,
        "updated_at", _iso(Env.version_at),
        "deleted_at", _iso(effective_deleted_at(Env)),
        "app_name", Env.app_name,
        "name", Env.name,
        "display_name", Env.display_name,
        "description", Env.description,
        "lock_by", Env.lock_by,
        "resource_pool_name", Env.resource_pool_name,
        "deploy_group_name", Env.deploy_group_name,
        "replicas_management", Env.replicas_management,
        "rollout_strategy", Env.rollout_strategy,
        "labels", labels,
        "profiles", profiles,
        "current_deployment", deployment,
    )  # fmt: skip
    return cast(document, Text)
