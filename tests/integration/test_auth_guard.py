"""Read auth is one guard on the whole app: every route is closed unless it is marked public.

The routes are taken from the OpenAPI document itself, so a route added later is walked too.
"""

from __future__ import annotations

import re

import pytest
from litestar import get
from litestar.testing import TestClient

from cmdb_sync.app import create_app
from tests.conftest import make_settings

READER, ADMIN = "reader-token", "admin-token"
# data only an admin may read: bodies of deliveries hold variable values
ADMIN_ONLY = {"/api/v1/events", "/api/v1/events/{event_id}"}
PUBLIC = {"/healthz", "/readyz", "/metrics", "/schema/openapi.json"}


@pytest.fixture
def closed_app(engine, migrated_url):
    app = create_app(make_settings(migrated_url, api_tokens=[READER], api_admin_tokens=[ADMIN]))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def read_routes(client: TestClient) -> list[str]:
    document = client.get("/schema/openapi.json").json()
    return sorted(
        path for path, operations in document["paths"].items() if path.startswith("/api/v1/") and "get" in operations
    )


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_the_walk_covers_every_read_route(closed_app) -> None:
    routes = read_routes(closed_app)
    assert len(routes) >= 15
    assert ADMIN_ONLY <= set(routes)


def test_every_read_route_answers_401_without_a_token(closed_app) -> None:
    for path in read_routes(closed_app):
        response = closed_app.get(concrete(path))
        assert response.status_code == 401, path
        assert response.headers["content-type"].startswith("application/problem+json"), path


def test_every_read_route_answers_401_to_a_wrong_token(closed_app) -> None:
    for path in read_routes(closed_app):
        assert closed_app.get(concrete(path), headers={"Authorization": "Bearer nope"}).status_code == 401, path


def test_admin_only_routes_answer_403_to_a_read_token_and_the_rest_let_it_in(closed_app) -> None:
    for path in read_routes(closed_app):
        status = closed_app.get(concrete(path), headers={"Authorization": f"Bearer {READER}"}).status_code
        if path in ADMIN_ONLY:
            assert status == 403, path
        else:
            assert status in (200, 404), (path, status)


def test_an_admin_token_opens_every_read_route(closed_app) -> None:
    for path in read_routes(closed_app):
        status = closed_app.get(concrete(path), headers={"Authorization": f"Bearer {ADMIN}"}).status_code
        assert status in (200, 404), (path, status)


def test_probes_metrics_and_the_schema_stay_public(closed_app) -> None:
    for path in PUBLIC:
        assert closed_app.get(path).status_code == 200, path


def test_a_route_that_forgets_about_auth_is_closed_all_the_same(engine, migrated_url) -> None:
    @get("/api/v1/forgotten", sync_to_thread=False)
    def forgotten() -> dict[str, str]:
        return {"secret": "inventory"}

    app = create_app(make_settings(migrated_url, api_tokens=[READER], api_admin_tokens=[ADMIN]))
    app.register(forgotten)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/api/v1/forgotten").status_code == 401
        allowed = client.get("/api/v1/forgotten", headers={"Authorization": f"Bearer {READER}"})
        assert allowed.status_code == 200
        assert allowed.json() == {"secret": "inventory"}


def test_the_openapi_document_says_how_to_authenticate_and_names_every_operation(closed_app) -> None:
    document = closed_app.get("/schema/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerToken"] == {**schemes["bearerToken"], "type": "http", "scheme": "bearer"}
    assert schemes["webhookToken"]["name"] == "X-AppStack-Token"
    operations = [op for item in document["paths"].values() for op in item.values()]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids)) and "listApps" in ids and "getEnv" in ids and "receiveWebhook" in ids
    for path in read_routes(closed_app):
        assert document["paths"][path]["get"]["security"] == [{"bearerToken": []}], path
    webhook = document["paths"]["/webhooks/appstack"]["post"]
    assert webhook["security"] == [{"webhookToken": []}]
    assert {p["name"] for p in webhook["parameters"]} >= {"X-AppStack-Event", "X-AppStack-Action", "X-AppStack-App"}
    # what the receiver accepts: the kind's header may be left out (objectKind says it); names
    # over 256 characters and a blank id or kind are refused
    assert not any(p["required"] for p in webhook["parameters"])
    assert all(p["schema"]["maxLength"] == 256 for p in webhook["parameters"])
    envelope = webhook["requestBody"]["content"]["application/json"]["schema"]
    assert envelope["properties"]["objectKind"] == {**envelope["properties"]["objectKind"], "maxLength": 256}
    assert envelope["properties"]["objectKind"]["pattern"] == r"\S"
    examples = webhook["requestBody"]["content"]["application/json"]["examples"]
    assert examples["04_Env_Update"]["value"]["objectKind"] == "Env"


@pytest.mark.parametrize("page_path", ["/schema/swagger", "/schema/redoc"])
def test_the_documentation_pages_load_nothing_from_the_internet(closed_app, page_path) -> None:
    page = closed_app.get(page_path)
    assert page.status_code == 200
    assert "http://" not in page.text and "https://" not in page.text
    assets = re.findall(r"""(?:src|href)=['"](/schema/[^'"]+)['"]""", page.text)
    assert assets
    for asset in assets:
        assert closed_app.get(asset).status_code == 200, asset
