"""The read API, through the real app, on a database filled by posting deliveries."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from litestar.testing import TestClient
from sqlalchemy import event

from cmdb_sync.app import create_app
from tests.conftest import make_settings, post_delivery
from tests.helpers import app_event, env_event, orchestration_event, variable_group_event

READER, ADMIN = "reader-token", "admin-token"
SEED_ORG = "60d54f3daccf2bbd6659f3ad"


@pytest.fixture
def api(engine, migrated_url):
    app = create_app(make_settings(migrated_url, api_tokens=[READER], api_admin_tokens=[ADMIN]))
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {READER}"
        yield client


def as_admin(client: TestClient, url: str, **kw):
    return client.get(url, headers={"Authorization": f"Bearer {ADMIN}"}, **kw)


def seeded(api, seed, *names: str) -> None:
    for name in names or seed:
        assert post_delivery(api, seed[name]).status_code == 200, name


def test_app_fields_equal_the_payload(api, seed) -> None:
    seeded(api, seed, "01_App_Create", "02_App_Delete")
    body = api.get("/api/v1/apps/myapp-demo").json()
    assert body == {
        "org_id": SEED_ORG,
        "name": "myapp-demo",
        "description": "这是一个测试应用",
        "type": "APP",
        "creator_id": None,
        "created_at": None,
        "updated_at": "2024-12-15T03:23:01.572Z",
        "deleted_at": None,
    }


def test_env_fields_equal_the_payload(api, seed) -> None:
    seeded(api, seed, "01_App_Create", "03_Env_Create", "04_Env_Update")
    env = api.get("/api/v1/apps/myapp-demo/envs/test-env").json()
    attrs = seed["04_Env_Update"]["body"]["objectAttributes"]
    assert env["org_id"] == SEED_ORG
    assert env["app_name"] == "myapp-demo"
    assert env["name"] == attrs["name"]
    assert env["display_name"] == attrs["displayName"]
    assert env["description"] == attrs["description"]
    assert env["lock_by"] == attrs["lockBy"]
    assert env["resource_pool_name"] == attrs["resourcePoolName"]
    assert env["deploy_group_name"] == attrs["deployGroupName"]
    assert env["replicas_management"] == attrs["spec"]["replicasManagement"]
    assert env["rollout_strategy"] == attrs["spec"]["rolloutStrategy"]
    assert env["labels"] == [
        {
            "namespace": "default",
            "name": "envType",
            "value": "test",
            "display_name": "环境级别",
            "display_value": "测试环境",
        }
    ]
    assert env["profiles"] == [{"name": "test-vars", "display_name": "测试环境变量组", "type": "APP"}]
    assert env["updated_at"] == "2024-07-29T07:07:42.536Z"
    assert env["deleted_at"] is None
    assert env["current_deployment"] is None
    listed = api.get("/api/v1/apps/myapp-demo/envs").json()
    assert listed == {"items": [env], "next_cursor": None}


def test_orchestration_fields_equal_the_payload(api, seed) -> None:
    seeded(api, seed, "01_App_Create", "07_AppOrchestration_Create", "08_AppOrchestration_Update")
    sn = quote("myapp-demo@KUBERNETES", safe="")
    body = api.get(f"/api/v1/apps/myapp-demo/orchestrations/{sn}").json()
    attrs = seed["08_AppOrchestration_Update"]["body"]["objectAttributes"]
    assert body["sn"] == "myapp-demo@KUBERNETES"
    assert body["name"] == "myapp-demo"
    assert (body["storage_type"], body["format"], body["type"]) == ("BUILTIN", "MANIFEST", "AppBuiltInOrchestration")
    assert body["label_policy"] == "FROM_LABEL_BINDING"
    assert body["suitable_resource_types"] == ["KUBERNETES"]
    assert body["revision"] == {
        "sha": attrs["revision"]["sha"],
        "message": attrs["revision"]["message"],
        "author": attrs["revision"]["author"],
        "commit_time": "2024-07-29T07:14:47.949Z",
    }
    assert [label["value"] for label in body["labels"]] == ["dev", "test", "prepub", "production"]
    assert body["placeholders"] == [
        {
            "name": p["name"],
            "description": p["description"],
            "type": p["type"],
            "value": p["value"],
            "overridable": p["overridable"],
            "rule": p["rule"],
            "value_source": p["valueSource"],
            "predefined": p["predefined"],
            "rs_type": p["rsType"],
        }
        for p in attrs["placeholderList"]
    ]
    assert body["components"] == [
        {k: c[k] for k in ("name", "kind", "description", "content", "priority", "type")}
        for c in attrs["componentList"]
    ]
    assert api.get("/api/v1/apps/myapp-demo/orchestrations").json()["items"] == [body]


def test_variables_are_masked_for_readers(api, seed) -> None:
    seeded(api, seed, "01_App_Create", "10_VariableGroup_Create", "11_VariableGroup_Update")
    group = api.get("/api/v1/apps/myapp-demo/variable-groups/test-vars").json()
    assert group["vars"] == [
        {"key": "key1", "value": None, "description": "这是变量1", "masked": True},
        {"key": "key2", "value": None, "description": "这是变量2", "masked": True},
    ]
    assert (group["app_name"], group["name"], group["display_name"]) == ("myapp-demo", "test-vars", "测试环境变量组")
    assert api.get("/api/v1/apps/myapp-demo/variable-groups").json()["items"] == [group]


def test_reveal_needs_an_admin_token(api, seed) -> None:
    seeded(api, seed, "01_App_Create", "11_VariableGroup_Update")
    denied = api.get("/api/v1/apps/myapp-demo/variable-groups/test-vars?reveal=true")
    assert denied.status_code == 403
    assert denied.headers["content-type"].startswith("application/problem+json")
    admin_masked = as_admin(api, "/api/v1/apps/myapp-demo/variable-groups/test-vars").json()
    assert admin_masked["vars"][0]["masked"] is True
    revealed = as_admin(api, "/api/v1/apps/myapp-demo/variable-groups?reveal=true").json()["items"][0]
    assert revealed["vars"] == [
        {"key": "key1", "value": "value1", "description": "这是变量1", "masked": False},
        {"key": "key2", "value": "value2", "description": "这是变量2", "masked": False},
    ]


@pytest.mark.parametrize(
    ("authorization", "status"),
    [(None, 401), ("Bearer nope", 401), ("Basic cmVhZGVy", 401), (f"Bearer {READER}", 200), (f"Bearer {ADMIN}", 200)],
)
def test_read_tokens(api, authorization, status) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    api.headers.pop("Authorization")
    response = api.get("/api/v1/apps", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


def test_open_api_when_no_token_is_configured_but_journal_stays_closed(engine, migrated_url, caplog) -> None:
    app = create_app(make_settings(migrated_url))
    assert "read API is open" in caplog.text
    with TestClient(app) as client:
        post_delivery(client, app_event("Create", 1000))
        assert client.get("/api/v1/apps").status_code == 200
        assert client.get("/api/v1/events").status_code == 403


def test_journal_is_for_admins_and_never_shows_the_webhook_token(api, seed) -> None:
    seeded(api, seed, "01_App_Create", "11_VariableGroup_Update")
    assert api.get("/api/v1/events").status_code == 403
    assert api.get(f"/api/v1/events/{seed['01_App_Create']['body']['id']}").status_code == 403
    listed = as_admin(api, "/api/v1/events").json()
    assert [e["id"] for e in listed["items"]] == [
        seed["11_VariableGroup_Update"]["body"]["id"],
        seed["01_App_Create"]["body"]["id"],
    ]
    first = listed["items"][1]
    assert first["kind"] == "App" and first["action"] == "Create" and first["status"] == "applied"
    assert first["time"] == "2024-12-15T03:23:01.572Z"
    assert first["org_id"] == SEED_ORG and first["actor_id"] == "646dabc05ccc4ad1bc2a9e2f"
    detail = as_admin(api, f"/api/v1/events/{first['id']}").json()
    assert detail["body"] == seed["01_App_Create"]["body"]
    assert detail["headers"]["x-appstack-token"] == "[redacted]"
    assert "secret" not in str(detail)
    assert as_admin(api, "/api/v1/events/nope").status_code == 404


def test_journal_filters(api, seed) -> None:
    seeded(api, seed)
    post_delivery(
        api,
        env_event("Create", 1000, description=None)
        | {"body": {**env_event("Create", 1000)["body"], "objectAttributes": "x"}},
    )

    def ids(query: str) -> list[str]:
        response = as_admin(api, f"/api/v1/events?{query}")
        assert response.status_code == 200, response.text
        return [e["id"] for e in response.json()["items"]]

    assert len(ids("kind=Env")) == 4
    assert len(ids("kind=Env&action=Delete")) == 1
    assert len(ids("status=failed")) == 1
    assert len(ids("app=myapp-demo")) == 15
    assert ids("since=2024-12-01T00:00:00Z") == [
        seed["15_ReleaseStageExecution_StatusUpdate"]["body"]["id"],
        seed["01_App_Create"]["body"]["id"],
    ]
    assert len(ids("since=2024-07-29T07:00:00Z&until=2024-07-29T07:10:00Z")) == 6


def test_label_queries_must_all_match(api) -> None:
    post_delivery(api, env_event("Create", 1000, name="a", labels={"envType": "production", "region": "cn"}))
    post_delivery(api, env_event("Create", 1000, name="b", labels={"envType": "production", "region": "us"}))
    post_delivery(api, env_event("Create", 1000, name="c", labels={"envType": "test", "region": "cn"}))
    post_delivery(api, env_event("Create", 1000, name="d", app="other", labels={"envType": "production"}))

    def names(query: str) -> list[tuple[str, str]]:
        response = api.get(f"/api/v1/envs?{query}")
        assert response.status_code == 200, response.text
        return [(e["app_name"], e["name"]) for e in response.json()["items"]]

    assert names("label=envType=production") == [("other", "d"), ("shop", "a"), ("shop", "b")]
    assert names("label=envType=production&label=region=cn") == [("shop", "a")]
    assert names("label=envType=production&app=shop") == [("shop", "a"), ("shop", "b")]
    assert names("label=region=mars") == []
    bad = api.get("/api/v1/envs?label=envType")
    assert bad.status_code == 400 and "label" in bad.json()["detail"]


def test_pages_neither_skip_nor_repeat_when_rows_are_added_between_them(api) -> None:
    for i in range(0, 20, 2):
        post_delivery(api, env_event("Create", 1000, name=f"env-{i:02d}"))
    seen: list[str] = []
    cursor = None
    added = 1
    while True:
        query = "limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(f"/api/v1/apps/shop/envs?{query}").json()
        seen.extend(e["name"] for e in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
        # rows added on both sides of the cursor between pages
        post_delivery(api, env_event("Create", 2000, name=f"env-{added:02d}"))
        post_delivery(api, env_event("Create", 2000, name=f"aaa-{added:02d}"))
        added += 2
    originals = [f"env-{i:02d}" for i in range(0, 20, 2)]
    assert len(seen) == len(set(seen))
    assert [name for name in seen if name in originals] == originals
    assert seen == sorted(seen)


def test_cursor_and_limit_are_validated(api) -> None:
    assert api.get("/api/v1/apps?limit=0").status_code == 400
    assert api.get("/api/v1/apps?limit=501").status_code == 400
    assert api.get("/api/v1/apps?limit=500").status_code == 200
    assert api.get("/api/v1/apps?limit=ten").status_code == 400
    bad = api.get("/api/v1/apps?cursor=garbage!!")
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/problem+json")
    assert api.get("/api/v1/apps?include_deleted=maybe").status_code == 400
    unknown = api.get("/api/v1/envs?lable=envType=prod")
    assert unknown.status_code == 400 and unknown.json()["unknown"] == ["lable"]


def test_unicode_names_in_paths(api) -> None:
    app_name, env_name = "商城-🚀", "生产 环境"
    post_delivery(api, app_event("Create", 1000, name=app_name))
    post_delivery(api, env_event("Create", 1000, name=env_name, app=app_name))
    post_delivery(api, variable_group_event("Create", 1000, name="变量", app=app_name, values={"k": "v"}))
    base = f"/api/v1/apps/{quote(app_name, safe='')}"
    assert api.get(base).json()["name"] == app_name
    assert api.get(f"{base}/envs/{quote(env_name, safe='')}").json()["name"] == env_name
    assert api.get(f"{base}/variable-groups/{quote('变量', safe='')}").json()["name"] == "变量"
    assert api.get(f"/api/v1/apps?q={quote('🚀')}").json()["items"][0]["name"] == app_name


def test_missing_objects_are_404(api) -> None:
    post_delivery(api, app_event("Create", 1000))
    for url in [
        "/api/v1/apps/nope",
        "/api/v1/apps/nope/envs",
        "/api/v1/apps/shop/envs/nope",
        "/api/v1/apps/shop/variable-groups/nope",
        "/api/v1/apps/shop/orchestrations/nope",
        "/api/v1/change-orders/nope",
    ]:
        response = api.get(url)
        assert response.status_code == 404, url
        assert response.headers["content-type"].startswith("application/problem+json")


def test_a_name_in_several_orgs_needs_org_id(api) -> None:
    post_delivery(api, env_event("Create", 1000, org="org-b"))
    post_delivery(api, env_event("Create", 1000, org="org-a"))
    ambiguous = api.get("/api/v1/apps/shop/envs")
    assert ambiguous.status_code == 409
    assert ambiguous.json()["orgs"] == ["org-a", "org-b"]
    chosen = api.get("/api/v1/apps/shop/envs?org_id=org-b").json()["items"]
    assert [(e["org_id"], e["name"]) for e in chosen] == [("org-b", "prod")]
    assert [a["org_id"] for a in api.get("/api/v1/apps?org_id=org-a").json()["items"]] == ["org-a"]


def test_deleted_objects_are_hidden_unless_asked_for(api) -> None:
    post_delivery(api, app_event("Create", 500))
    post_delivery(api, env_event("Create", 1000, name="gone"))
    post_delivery(api, env_event("Delete", 2000, name="gone"))
    post_delivery(api, env_event("Create", 1000, name="here"))
    assert [e["name"] for e in api.get("/api/v1/apps/shop/envs").json()["items"]] == ["here"]
    assert api.get("/api/v1/apps/shop/envs/gone").status_code == 404
    shown = api.get("/api/v1/apps/shop/envs?include_deleted=true").json()["items"]
    assert [(e["name"], e["deleted_at"]) for e in shown] == [("gone", "1970-01-01T00:00:02.000Z"), ("here", None)]
    assert api.get("/api/v1/apps/shop/envs/gone?include_deleted=true").json()["deleted_at"] is not None


def test_an_app_delete_hides_its_children(api) -> None:
    post_delivery(api, app_event("Create", 500))
    post_delivery(api, env_event("Create", 1000))
    post_delivery(api, variable_group_event("Create", 1000, values={"a": "1"}))
    post_delivery(api, orchestration_event("Create", 1000))
    post_delivery(api, app_event("Delete", 2000))
    assert api.get("/api/v1/apps").json()["items"] == []
    assert api.get("/api/v1/apps/shop").status_code == 404
    assert api.get("/api/v1/envs").json()["items"] == []
    shown = api.get("/api/v1/apps/shop/envs?include_deleted=true").json()["items"]
    assert [e["deleted_at"] for e in shown] == ["1970-01-01T00:00:02.000Z"]
    post_delivery(api, app_event("Create", 3000))
    assert api.get("/api/v1/apps/shop/envs").json()["items"] == []
    assert api.get("/api/v1/apps/shop/variable-groups").json()["items"] == []
    assert api.get("/api/v1/apps/shop/orchestrations").json()["items"] == []
    post_delivery(api, env_event("Create", 4000, name="reborn"))
    assert [e["name"] for e in api.get("/api/v1/apps/shop/envs").json()["items"]] == ["reborn"]


def test_lists_use_a_fixed_number_of_queries(api) -> None:
    engine = api.app.state.server.database.engine
    statements: list[str] = []

    def count(*args) -> None:
        statements.append(args[2])

    def queries_for(url: str) -> int:
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            assert api.get(url).status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(statements)

    for i in range(2):
        post_delivery(api, env_event("Create", 1000, name=f"env-{i}"))
        post_delivery(api, orchestration_event("Create", 1000, sn=f"o{i}"))
    small = {url: queries_for(url) for url in ("/api/v1/envs", "/api/v1/apps/shop/orchestrations", "/api/v1/apps")}
    for i in range(2, 30):
        post_delivery(api, env_event("Create", 1000, name=f"env-{i}"))
        post_delivery(api, orchestration_event("Create", 1000, sn=f"o{i}"))
    large = {url: queries_for(url) for url in small}
    assert large == small


def test_path_parameters_and_reserved_names_are_not_query_parameters(api) -> None:
    post_delivery(api, env_event("Create", 1000))
    for url in ("/api/v1/apps/shop/envs?app=other", "/api/v1/apps?who=me", "/api/v1/apps?request=1"):
        response = api.get(url)
        assert response.status_code == 400, url
        assert "unknown query parameter" in response.json()["detail"]


def test_a_parameter_out_of_range_is_a_problem_naming_it(api) -> None:
    response = api.get("/api/v1/apps", params={"limit": 0})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["field"] == "limit"
    assert response.json()["detail"].startswith("limit:")
