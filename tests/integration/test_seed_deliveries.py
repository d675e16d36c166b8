"""The 15 example deliveries of the AppStack doc, through the real endpoint, on both databases."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from cmdb_sync.models import App, Env, Event, Orchestration, VariableGroup
from tests.conftest import load_seed, post_delivery

ORG = "60d54f3daccf2bbd6659f3ad"

# In the doc's order. The seed's App Create is dated 2024-12-15, after its App Delete (2024-07-29),
# so the delete arrives stale.
EXPECTED_IN_ORDER = {
    "01_App_Create": (200, "applied"),
    "02_App_Delete": (200, "stale"),
    "03_Env_Create": (200, "applied"),
    "04_Env_Update": (200, "applied"),
    "05_Env_Delete": (200, "applied"),
    "06_ChangeOrder_StatusUpdate": (200, "applied"),
    "07_AppOrchestration_Create": (200, "applied"),
    "08_AppOrchestration_Update": (200, "applied"),
    "09_AppOrchestration_Delete": (200, "applied"),
    "10_VariableGroup_Create": (200, "applied"),
    "11_VariableGroup_Update": (200, "applied"),
    "12_VariableGroup_Delete": (200, "applied"),
    "13_ChangeRequest_Create": (200, "applied"),
    "14_ChangeRequest_StatusUpdate": (200, "applied"),
    "15_ReleaseStageExecution_StatusUpdate": (200, "applied"),
}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_seed_in_document_order_gets_the_documented_statuses(client, session_factory, seed) -> None:
    for name, delivery in seed.items():
        response = post_delivery(client, delivery)
        assert (response.status_code, response.json()["status"]) == EXPECTED_IN_ORDER[name], name
        assert response.json()["event_id"] == delivery["body"]["id"]
    with session_factory() as session:
        events = {e.id: e for e in session.scalars(select(Event))}
    assert len(events) == 15
    for name, delivery in seed.items():
        event = events[delivery["body"]["id"]]
        assert event.status == EXPECTED_IN_ORDER[name][1]
        assert json.loads(event.body) == delivery["body"]
        assert event.headers["x-appstack-token"] == "[redacted]"
        assert event.kind == delivery["headers"]["X-AppStack-Event"]
        assert event.action == delivery["headers"]["X-AppStack-Action"]
        assert event.app == "myapp-demo"


def test_seed_app_create_is_newer_than_its_delete(client, session_factory, seed) -> None:
    for delivery in seed.values():
        post_delivery(client, delivery)
    with session_factory() as session:
        app = session.scalars(select(App).where(App.org_id == ORG, App.name == "myapp-demo")).one()
    assert app.deleted_at is None
    assert app.description == "这是一个测试应用"
    assert app.type == "APP"
    assert app.version_id == "07ebabc883e14ec78612656bbef61925"
    assert app.version_at == datetime(2024, 12, 15, 3, 23, 1, 572000, tzinfo=UTC)
    assert app.purged_at == utc("2024-07-29T06:50:25.480+00:00")


def test_seed_env_keeps_its_last_snapshot_as_a_tombstone(client, session_factory, seed) -> None:
    for delivery in seed.values():
        post_delivery(client, delivery)
    with session_factory() as session:
        env = session.scalars(
            select(Env).options(selectinload(Env.labels), selectinload(Env.profiles)).where(Env.name == "test-env")
        ).one()
    assert (env.org_id, env.app_name) == (ORG, "myapp-demo")
    assert env.deleted_at == utc("2024-07-29T07:09:04.612+00:00")
    assert env.version_id == "f189080c26b94cdcbf069debdfeeff97"
    assert env.display_name == "测试环境"
    assert env.description == "这是测试环境,用于日常测试验证"
    assert env.lock_by is None
    assert env.resource_pool_name == "default"
    assert env.deploy_group_name == "demo-k8s-cluster"
    assert env.replicas_management == "USER"
    assert env.rollout_strategy == seed["05_Env_Delete"]["body"]["objectAttributes"]["spec"]["rolloutStrategy"]
    assert env.created_at == datetime(2024, 7, 29, 7, 6, 4, tzinfo=UTC)
    assert [(l.namespace, l.name, l.value, l.display_name, l.display_value) for l in env.labels] == [
        ("default", "envType", "test", "环境级别", "测试环境")
    ]
    assert [(p.name, p.display_name, p.type) for p in env.profiles] == [("test-vars", "测试环境变量组", "APP")]


def test_seed_env_update_sets_lock_and_rollout(client, session_factory, seed) -> None:
    post_delivery(client, seed["03_Env_Create"])
    with session_factory() as session:
        created = session.scalars(select(Env)).one()
        assert (created.lock_by, created.replicas_management, created.rollout_strategy) == (None, "SYSTEM", None)
    post_delivery(client, seed["04_Env_Update"])
    with session_factory() as session:
        env = session.scalars(select(Env)).one()
    assert env.lock_by == "61c92a37ae805dbacc5b9f78"
    assert env.deleted_at is None
    assert env.rollout_strategy[0]["batchMode"] == "ConfirmFirstBatch"
    assert env.rollout_strategy[0]["timeOutMS"] == 1200000


def test_seed_orchestration_children_follow_each_snapshot(client, session_factory, seed) -> None:
    def load() -> Orchestration:
        with session_factory() as session:
            return session.scalars(
                select(Orchestration).options(
                    selectinload(Orchestration.labels),
                    selectinload(Orchestration.placeholders),
                    selectinload(Orchestration.components),
                )
            ).one()

    post_delivery(client, seed["07_AppOrchestration_Create"])
    created = load()
    assert created.labels == []
    assert created.label_policy == "NONE"
    assert created.revision_sha == "73f3aa0a977946dbc79f948ba0933b1ab3962b2f"
    post_delivery(client, seed["08_AppOrchestration_Update"])
    updated = load()
    assert updated.label_policy == "FROM_LABEL_BINDING"
    assert [l.value for l in updated.labels] == ["dev", "test", "prepub", "production"]
    assert updated.revision_message == "修改端口号为8081"
    assert updated.revision_commit_time == datetime(2024, 7, 29, 7, 14, 47, 949000, tzinfo=UTC)
    assert updated.suitable_resource_types == ["KUBERNETES"]
    assert updated.app_name == "myapp-demo"
    assert updated.sn == "myapp-demo@KUBERNETES"
    placeholders = {p.name: p for p in updated.placeholders}
    assert len(updated.placeholders) == 7
    assert placeholders["image.backend"].value == "NULL"
    assert placeholders["envName"].value_source == "VARIABLE"
    assert placeholders["envName"].overridable is False
    assert placeholders["memoryRequest"].value == "32Mi"
    assert [(c.name, c.kind, c.priority) for c in updated.components] == [
        ("demo-service", "Service", 1),
        ("demo-deployment", "Deployment", 2),
    ]
    assert "targetPort: 8081" in updated.components[0].content
    post_delivery(client, seed["09_AppOrchestration_Delete"])
    deleted = load()
    assert deleted.deleted_at == utc("2024-07-29T07:17:31.418+00:00")
    assert [l.value for l in deleted.labels] == ["dev", "test", "production", "prepub"]


def test_seed_variable_group_vars_and_delete(client, session_factory, seed) -> None:
    post_delivery(client, seed["10_VariableGroup_Create"])
    post_delivery(client, seed["11_VariableGroup_Update"])
    with session_factory() as session:
        group = session.scalars(select(VariableGroup).options(selectinload(VariableGroup.variables))).one()
    assert (group.org_id, group.app_name, group.name, group.display_name) == (
        ORG,
        "myapp-demo",
        "test-vars",
        "测试环境变量组",
    )
    assert [(v.key, v.value, v.description) for v in group.variables] == [
        ("key1", "value1", "这是变量1"),
        ("key2", "value2", "这是变量2"),
    ]
    post_delivery(client, seed["12_VariableGroup_Delete"])
    with session_factory() as session:
        group = session.scalars(select(VariableGroup).options(selectinload(VariableGroup.variables))).one()
    assert group.deleted_at == utc("2024-07-29T07:03:40.665+00:00")
    assert group.variables == []  # the delete snapshot carries no vars: children follow the snapshot


@pytest.mark.parametrize("name", list(load_seed()))
def test_each_seed_delivery_alone_on_an_empty_database(client, session_factory, seed, name: str) -> None:
    response = post_delivery(client, seed[name])
    assert response.status_code == 200
    assert response.json() == {"event_id": seed[name]["body"]["id"], "status": "applied"}
    with session_factory() as session:
        apps = session.scalars(select(App)).all()
    # the object's app is known afterwards: created by the event itself, or implied by it
    assert [(a.org_id, a.name) for a in apps] == [(seed[name]["body"]["orgId"], "myapp-demo")]
