"""Change orders, change requests, pipeline runs, and what is deployed where."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from litestar.testing import TestClient

from cmdb_sync.app import create_app
from tests.conftest import make_settings, post_delivery
from tests.helpers import app_event, delivery, env_event

CO_ORG = "620321f073741507cb7d0cfd"
CR_ORG = "630de053ca912501d6c92e10"
RSE_ORG = "60d54f3daccf2bbd6659f3ad"
IMAGE = "yunxiao-registry.cn-beijing.cr.aliyuncs.com/test/demo1:emoji-2024-06-18-15-22-45"


@pytest.fixture
def api(engine, migrated_url):
    with TestClient(create_app(make_settings(migrated_url)), raise_server_exceptions=False) as client:
        yield client


def change_order(
    sn: str,
    time: int,
    *,
    env: str = "prod",
    state: str = "SUCCESS",
    image: str = "registry/app:1",
    ended: int | None = None,
    context: str | None = None,
    org: str = "org-1",
) -> dict[str, Any]:
    task = {
        "sn": f"{sn}-t1",
        "name": "deploy",
        "locator": "app/default/apps/v1/Deployment",
        "state": state,
        "startedAt": time - 500,
        "endedAt": ended,
        "strategyContent": '{"behavior":"Upsert"}',
        "contextContent": context if context is not None else json.dumps({"artifacts": {"image.backend": image}}),
        "engineTaskResultContent": json.dumps({"taskErrorMessages": {} if state == "SUCCESS" else {"d": "boom"}}),
        "deliveries": "---\nkind: Deployment\n",
        "spec": "---\nkind: Deployment\nmetadata: {}\n",
    }
    attrs = {
        "sn": sn,
        "name": f"deploy {sn}",
        "appName": "shop",
        "type": "Deploy",
        "version": f"v-{sn}",
        "tag": f"shop::{sn}",
        "state": state,
        "startedAt": time - 1000,
        "sourceType": "OPEN_API",
        "sourceSn": None,
        "jobs": [
            {
                "sn": f"{sn}-job",
                "envName": env,
                "state": state,
                "startedAt": time - 1000,
                "endedAt": ended,
                "stages": [{"sn": f"{sn}-s1", "name": "顺序1", "state": state, "tasks": [task]}],
            }
        ],
    }
    return delivery("ChangeOrder", "StatusUpdate", attrs, time=time, org=org)


def test_seed_change_order_field_by_field(api, seed) -> None:
    assert post_delivery(api, seed["06_ChangeOrder_StatusUpdate"]).json()["status"] == "applied"
    listed = api.get("/api/v1/apps/myapp-demo/change-orders").json()
    assert listed["next_cursor"] is None
    order = listed["items"][0]
    attrs = seed["06_ChangeOrder_StatusUpdate"]["body"]["objectAttributes"]
    assert order["org_id"] == CO_ORG
    assert order["sn"] == attrs["sn"] == "32468993abb14653ae9d86cf5d1cac98"
    assert (order["name"], order["type"], order["version"], order["tag"], order["state"]) == (
        attrs["name"],
        attrs["type"],
        attrs["version"],
        attrs["tag"],
        "FAILED",
    )
    assert (order["source_type"], order["source_sn"]) == ("CUSTOMIZE", "646dabc05ccc4ad1bc2a9e2f")
    assert order["started_at"] == "2024-08-15T06:43:19.000Z"
    assert order["updated_at"] == "2024-08-15T06:43:34.911Z"
    [job] = order["jobs"]
    assert (job["sn"], job["env_name"], job["state"]) == ("1aa8d03f6b574681af203447812d1d61", "test", "FAILED")
    assert (job["started_at"], job["ended_at"]) == ("2024-08-15T06:43:19.000Z", "2024-08-15T06:43:35.000Z")
    assert [(s["name"], s["state"]) for s in job["stages"]] == [("顺序1", "SUCCESS"), ("顺序2", "FAILED")]
    service, deployment = job["stages"][0]["tasks"][0], job["stages"][1]["tasks"][0]
    assert service == {
        "sn": "b8c82092f1a04d829154fde67bc4e0af",
        "name": "myapp-demo-test",
        "locator": "myapp-demo-test/default/core/v1/Service",
        "state": "SUCCESS",
        "artifacts": {},
        "error_messages": {},
    }
    assert deployment["artifacts"] == {"image.backend": IMAGE}
    [message] = deployment["error_messages"].values()
    assert "Cannot deserialize value of type `int`" in message
    assert "deliveries" not in deployment  # rendered manifests only on the single route
    detail = api.get(f"/api/v1/change-orders/{attrs['sn']}").json()
    detail_task = detail["jobs"][0]["stages"][1]["tasks"][0]
    raw_task = attrs["jobs"][0]["stages"][1]["tasks"][0]
    assert detail_task["deliveries"] == raw_task["deliveries"]
    assert detail_task["spec"] == raw_task["spec"]
    assert detail_task["artifacts"] == deployment["artifacts"]


def test_seed_change_request_field_by_field(api, seed) -> None:
    post_delivery(api, seed["13_ChangeRequest_Create"])
    assert api.get("/api/v1/apps/myapp-demo/change-requests").json()["items"][0]["state"] == "DEVELOPING"
    post_delivery(api, seed["14_ChangeRequest_StatusUpdate"])
    [cr] = api.get("/api/v1/apps/myapp-demo/change-requests").json()["items"]
    assert cr == {
        "org_id": CR_ORG,
        "updated_at": "2024-07-29T12:00:53.660Z",
        "deleted_at": None,
        "app_name": "myapp-demo",
        "sn": "c7ae55830f9043cd971f872282bdbc2e",
        "name": "日常变更001",
        "state": "INTEGRATING",
        "type": "APP",
        "branch": "feature/20240729_001",
        "origin_branch": "master",
        "origin_branch_revision": "2d26ea0ada1317ce95ef0c5307c4bc234621e94e",
        "owner_id": "646dabc05ccc4ad1bc2a9e2f",
        "repo_url": "https://codeup.aliyun.com/630de053ca912501d6c92e10/myapp-demo.git",
    }
    assert api.get("/api/v1/apps/myapp-demo/change-requests?state=INTEGRATING").json()["items"] == [cr]
    assert api.get("/api/v1/apps/myapp-demo/change-requests?state=DEVELOPING").json()["items"] == []
    # a stale Create after the update changes nothing
    assert (
        post_delivery(
            api, seed["13_ChangeRequest_Create"] | {"body": {**seed["13_ChangeRequest_Create"]["body"], "id": "late"}}
        ).json()["status"]
        == "stale"
    )


def test_seed_release_stage_execution_field_by_field(api, seed) -> None:
    post_delivery(api, seed["15_ReleaseStageExecution_StatusUpdate"])
    [run] = api.get("/api/v1/release-stage-executions").json()["items"]
    assert run == {
        "org_id": RSE_ORG,
        "updated_at": "2024-12-15T06:20:28.688Z",
        "deleted_at": None,
        "app_name": "myapp-demo",
        "release_workflow_sn": "8abe97bf557b410f8ca389e564553af1",
        "release_stage_sn": "80e65045dc794d3c921e81ec896b4693",
        "engine_instance_id": "3786032:1",
        "state": "FAILED",
        "trigger_mode": "MANUAL",
        "started_at": "2024-12-15T06:20:15.000Z",
        "ended_at": "2024-12-15T06:20:28.295Z",
    }
    for query, expected in [
        ("workflow_sn=8abe97bf557b410f8ca389e564553af1", 1),
        ("stage_sn=nope", 0),
        ("state=FAILED", 1),
        ("state=SUCCESS", 0),
    ]:
        assert len(api.get(f"/api/v1/release-stage-executions?{query}").json()["items"]) == expected


def test_running_update_after_success_is_stale(api) -> None:
    assert post_delivery(api, change_order("co1", 5000, state="SUCCESS", ended=4900)).json()["status"] == "applied"
    late_running = change_order("co1", 3000, state="RUNNING")
    assert post_delivery(api, late_running).json()["status"] == "stale"
    [order] = api.get("/api/v1/apps/shop/change-orders").json()["items"]
    assert order["state"] == "SUCCESS"
    assert order["jobs"][0]["state"] == "SUCCESS"


def test_current_deployment_is_the_newest_success(api) -> None:
    post_delivery(api, env_event("Create", 100))
    post_delivery(api, change_order("old", 10_000, image="registry/app:1", ended=9_000))
    env = api.get("/api/v1/apps/shop/envs/prod").json()
    assert env["current_deployment"] == {
        "change_order_sn": "old",
        "version": "v-old",
        "artifacts": {"image.backend": "registry/app:1"},
        "ended_at": "1970-01-01T00:00:09.000Z",
    }
    post_delivery(api, change_order("new", 20_000, image="registry/app:2", ended=19_000))
    assert api.get("/api/v1/apps/shop/envs/prod").json()["current_deployment"]["change_order_sn"] == "new"
    post_delivery(api, change_order("broken", 30_000, state="FAILED", image="registry/app:3", ended=29_000))
    post_delivery(api, change_order("running", 31_000, state="RUNNING", image="registry/app:4"))
    current = api.get("/api/v1/apps/shop/envs/prod").json()["current_deployment"]
    assert (current["change_order_sn"], current["artifacts"]) == ("new", {"image.backend": "registry/app:2"})
    listed = api.get("/api/v1/apps/shop/envs").json()["items"][0]["current_deployment"]
    assert listed == current
    other_env = change_order("staging1", 40_000, env="staging", image="registry/app:9", ended=39_000)
    post_delivery(api, other_env)
    assert api.get("/api/v1/apps/shop/envs/prod").json()["current_deployment"]["change_order_sn"] == "new"


def test_change_orders_newest_first_with_filters(api) -> None:
    post_delivery(api, change_order("a", 10_000, ended=9_500))
    post_delivery(api, change_order("b", 20_000, env="staging", state="FAILED"))
    post_delivery(api, change_order("c", 30_000, ended=29_500))
    assert [o["sn"] for o in api.get("/api/v1/apps/shop/change-orders").json()["items"]] == ["c", "b", "a"]
    assert [o["sn"] for o in api.get("/api/v1/apps/shop/change-orders?env=staging").json()["items"]] == ["b"]
    assert [o["sn"] for o in api.get("/api/v1/apps/shop/change-orders?state=SUCCESS").json()["items"]] == ["c", "a"]
    first = api.get("/api/v1/apps/shop/change-orders?limit=2").json()
    rest = api.get(f"/api/v1/apps/shop/change-orders?limit=2&cursor={first['next_cursor']}").json()
    assert [o["sn"] for o in first["items"] + rest["items"]] == ["c", "b", "a"]
    assert rest["next_cursor"] is None


def test_task_json_that_does_not_parse_does_not_fail_the_event(api) -> None:
    post_delivery(api, env_event("Create", 100))
    broken = change_order("co", 10_000, ended=9_000, context="{not json")
    broken["body"]["objectAttributes"]["jobs"][0]["stages"][0]["tasks"][0]["engineTaskResultContent"] = "[1, 2"
    broken["body"]["objectAttributes"]["jobs"][0]["stages"][0]["tasks"][0]["strategyContent"] = "null"
    response = post_delivery(api, broken)
    assert (response.status_code, response.json()["status"]) == (200, "applied")
    task = api.get("/api/v1/change-orders/co").json()["jobs"][0]["stages"][0]["tasks"][0]
    assert (task["artifacts"], task["error_messages"]) == ({}, {})
    assert api.get("/api/v1/apps/shop/envs/prod").json()["current_deployment"]["artifacts"] == {}


def test_artifact_filter_finds_where_an_image_runs(api) -> None:
    for env in ("prod", "staging", "dev"):
        post_delivery(api, env_event("Create", 100, name=env))
    post_delivery(api, change_order("p1", 10_000, env="prod", image="registry/shop:1.0", ended=9_000))
    post_delivery(api, change_order("s1", 10_000, env="staging", image="registry/shop:2.0", ended=9_000))
    post_delivery(api, change_order("p2", 20_000, env="prod", image="registry/shop:2.0", state="FAILED", ended=19_000))

    def envs(query: str) -> list[str]:
        response = api.get(f"/api/v1/envs?{query}")
        assert response.status_code == 200, response.text
        return [e["name"] for e in response.json()["items"]]

    assert envs("artifact=shop:2.0") == ["staging"]  # prod's 2.0 deployment failed: prod still runs 1.0
    assert envs("artifact=shop:1.0") == ["prod"]
    assert envs("artifact=registry/shop") == ["prod", "staging"]
    assert envs("artifact=shop:1.0&label=envType=production") == ["prod"]
    assert envs("artifact=nothing") == []
    assert envs("artifact=100%25") == []  # LIKE wildcards are taken literally


def test_artifact_filter_matches_any_case_and_the_artifacts_keep_theirs(api) -> None:
    """The searched text is stored lower-cased; what the API shows is the artifacts as sent."""
    post_delivery(api, env_event("Create", 100, name="prod"))
    post_delivery(api, change_order("p1", 10_000, env="prod", image="Registry/Shop:1.0-RC", ended=9_000))

    def envs(query: str) -> list[str]:
        response = api.get(f"/api/v1/envs?{query}")
        assert response.status_code == 200, response.text
        return [e["name"] for e in response.json()["items"]]

    assert envs("artifact=shop:1.0-rc") == ["prod"]
    assert envs("artifact=SHOP:1.0-RC") == ["prod"]
    assert envs("artifact=registry/shop:1.0-rc&as_of=2000-01-01T00:00:00Z") == ["prod"]  # as-of agrees
    shown = api.get("/api/v1/apps/shop/envs/prod").json()["current_deployment"]["artifacts"]
    assert "Registry/Shop:1.0-RC" in shown.values()


def test_history_is_not_hidden_by_an_app_delete(api) -> None:
    post_delivery(api, app_event("Create", 100))
    post_delivery(api, change_order("co", 10_000, ended=9_000))
    post_delivery(api, app_event("Delete", 20_000))
    assert api.get("/api/v1/apps/shop").status_code == 404
    assert [o["sn"] for o in api.get("/api/v1/apps/shop/change-orders").json()["items"]] == ["co"]
    assert api.get("/api/v1/change-orders/co").status_code == 200


def test_change_order_sn_in_two_orgs_needs_org_id(api) -> None:
    post_delivery(api, change_order("same", 10_000, org="org-a"))
    post_delivery(api, change_order("same", 10_000, org="org-b"))
    ambiguous = api.get("/api/v1/change-orders/same")
    assert ambiguous.status_code == 409 and ambiguous.json()["orgs"] == ["org-a", "org-b"]
    assert api.get("/api/v1/change-orders/same?org_id=org-b").json()["org_id"] == "org-b"


def test_change_order_with_wrong_types_fails_but_is_kept(api) -> None:
    bad = change_order("co", 10_000)
    bad = copy.deepcopy(bad)
    bad["body"]["objectAttributes"]["jobs"] = "all of them"
    response = post_delivery(api, bad)
    assert (response.status_code, response.json()["status"]) == (202, "failed")
    assert "jobs" in response.json()["error"]
