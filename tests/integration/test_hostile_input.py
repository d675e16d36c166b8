"""Hostile and unlucky input: never a 500 (a sender retries it forever), never a 503 for a
problem that sending again cannot fix, and nothing already held changed by a refused delivery."""

from __future__ import annotations

import base64
import gzip
import json
import random
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from cmdb_sync.app import create_app
from cmdb_sync.models import Event
from tests.conftest import WEBHOOK_TOKEN, make_settings
from tests.helpers import dump_state

pytestmark = pytest.mark.hostile

ADMIN = "admin-token"
LONG = "".join(random.Random(3).choice(string.ascii_letters + string.digits) for _ in range(3000))
HEADERS = {"X-AppStack-Token": WEBHOOK_TOKEN, "X-AppStack-Event": "App", "X-AppStack-Action": "Update"}


def body(**fields: Any) -> dict[str, Any]:
    delivery = {
        "id": "hostile-1",
        "user": {"id": "u1"},
        "orgId": "org-1",
        "time": 1_700_000_000_000,
        "objectKind": "App",
        "objectAttributes": {"name": "shop"},
    }
    delivery.update(fields)
    return delivery


def encoded(value: Any) -> bytes:
    return json.dumps(value).encode()


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# (name, raw body, extra headers, expected status, the field a 400 names)
CORPUS = [
    (
        "raw lone surrogate bytes",
        b'{"id":"x\xed\xa0\x80","orgId":"o","time":1,"objectKind":"App","objectAttributes":{"name":"a"}}',
        {},
        400,
        "body",
    ),
    ("escaped lone surrogate in id", encoded(body(id="s\ud800")), {}, 400, "body"),
    ("escaped lone low surrogate in id", encoded(body(id="s\udc00")), {}, 400, "body"),
    ("escaped lone surrogate in orgId", encoded(body(orgId="o\ud800")), {}, 400, "body"),
    ("escaped lone surrogate in user.id", encoded(body(user={"id": "u\ud800"})), {}, 400, "body"),
    (
        "500 levels inside objectAttributes",
        encoded(body()).replace(b'"name": "shop"', b'"name": "shop", "x": ' + nested(500).encode()),
        {},
        400,
        "body",
    ),
    ("a 1,000-deep array as the body", nested(1000).encode(), {}, 400, "body"),
    ("time past the end of time in UTC", encoded(body(time="9999-12-31T23:59:59-01:00")), {}, 202, None),
    ("time before the start of time in UTC", encoded(body(time="0001-01-01T00:00:00+01:00")), {}, 202, None),
    ("3,000-character id", encoded(body(id=LONG)), {}, 400, "id"),
    ("3,000-character objectKind", encoded(body(objectKind=LONG)), {"X-AppStack-Event": LONG}, 400, "objectKind"),
    ("3,000-character X-AppStack-App", encoded(body()), {"X-AppStack-App": LONG}, 400, "X-AppStack-App"),
    ("3,000-character orgId", encoded(body(orgId=LONG)), {}, 400, "orgId"),
    ("3,000-character user.id", encoded(body(user={"id": LONG})), {}, 400, "user.id"),
    ("3,000-character app name", encoded(body(objectAttributes={"name": LONG})), {}, 202, None),
    ("a gzip'd body", gzip.compress(encoded(body())), {"Content-Encoding": "gzip"}, 400, "Content-Encoding"),
    ("a plain body said to be gzip'd", encoded(body()), {"Content-Encoding": "gzip"}, 400, "Content-Encoding"),
]


@pytest.fixture
def hostile_client(engine, migrated_url):
    app = create_app(make_settings(migrated_url, api_admin_tokens=[ADMIN]))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize(("name", "raw", "extra", "status", "field"), CORPUS, ids=[case[0] for case in CORPUS])
def test_hostile_delivery(hostile_client, engine, session_factory, name, raw, extra, status, field) -> None:
    held = encoded(body(id="held", objectAttributes={"name": "held-app", "description": "before"}))
    assert hostile_client.post("/webhooks/appstack", content=held, headers=HEADERS).status_code == 200
    before = dump_state(engine)

    response = hostile_client.post("/webhooks/appstack", content=raw, headers={**HEADERS, **extra})
    assert response.status_code == status, response.text
    if status == 400:
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["field"] == field
        assert dump_state(engine) == before
    else:
        assert response.json()["status"] == "failed"
        with session_factory() as session:
            stored = session.get(Event, response.json()["event_id"])
        assert stored is not None and stored.status == "failed" and stored.error


def cursor_of(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


LIST_ROUTES = [
    "/api/v1/apps",
    "/api/v1/envs",
    "/api/v1/apps/shop/envs",
    "/api/v1/apps/shop/variable-groups",
    "/api/v1/apps/shop/orchestrations",
    "/api/v1/apps/shop/change-orders",
    "/api/v1/apps/shop/change-requests",
    "/api/v1/release-stage-executions",
    "/api/v1/events",
]
BAD_CURSORS = {
    "deep nesting": nested(3000),
    "a lone surrogate": ["a\ud800", "b"],
    "values of the wrong type": [1.5, 2],
    "a time without an offset": [{"dt": "2024-01-01T00:00:00"}, "x"],
    "a time out of range": [{"dt": "9999-12-31T23:59:59-01:00"}, "x"],
}


@pytest.mark.parametrize("route", LIST_ROUTES)
@pytest.mark.parametrize("cursor", list(BAD_CURSORS), ids=list(BAD_CURSORS))
def test_a_cursor_the_list_never_gave_out_is_400(hostile_client, route, cursor) -> None:
    assert hostile_client.post("/webhooks/appstack", content=encoded(body()), headers=HEADERS).status_code == 200
    response = hostile_client.get(
        route, params={"cursor": cursor_of(BAD_CURSORS[cursor])}, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "cursor"


@pytest.mark.parametrize("query", ["since=9999-12-31T23:59:59-01:00", "until=0001-01-01T00:00:00%2B01:00"])
def test_journal_bounds_out_of_range_are_400(hostile_client, query) -> None:
    response = hostile_client.get(f"/api/v1/events?{query}", headers={"Authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 400, response.text
    assert response.json()["field"] == query.split("=")[0]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
ENVELOPE_FIELDS = ["id", "user", "orgId", "time", "objectKind", "objectAttributes"]
ATTRIBUTE_FIELDS = ["name", "appName", "labelList", "vars", "sn", "app", "jobs", "placeholderList", "spec", "profiles"]
KINDS = ["App", "Env", "VariableGroup", "AppOrchestration", "ChangeOrder", "ChangeRequest", "ReleaseStageExecution"]


def usable_id(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return True
    return isinstance(value, str) and bool(value.strip()) and len(value) <= 256 and "\x00" not in value


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_json_in_any_field_is_never_a_500_or_503(hostile_client, engine, session_factory, data) -> None:
    kind = data.draw(st.sampled_from(KINDS))
    delivery = body(id=data.draw(st.text(min_size=1, max_size=12)), objectKind=kind)
    delivery["objectAttributes"] = {"name": "n", "appName": "shop", "sn": "s"}
    for field in data.draw(st.lists(st.sampled_from(ENVELOPE_FIELDS), max_size=3, unique=True)):
        delivery[field] = data.draw(JSON)
    if isinstance(delivery.get("objectAttributes"), dict):
        for field in data.draw(st.lists(st.sampled_from(ATTRIBUTE_FIELDS), max_size=4, unique=True)):
            delivery["objectAttributes"][field] = data.draw(JSON)
    headers = {
        **HEADERS,
        "X-AppStack-Event": kind,
        "X-AppStack-Action": data.draw(st.sampled_from(["Create", "Update", "Delete", "StatusUpdate"])),
    }
    before = dump_state(engine)

    response = hostile_client.post("/webhooks/appstack", content=json.dumps(delivery).encode(), headers=headers)

    assert response.status_code in (200, 202, 400), response.text
    event_id = delivery.get("id")
    journaled = response.status_code in (200, 202)
    if journaled:
        with session_factory() as session:
            assert session.get(Event, response.json()["event_id"]) is not None
    else:
        assert dump_state(engine) == before
    if usable_id(event_id) and delivery.get("objectKind") == kind:  # nothing left to refuse it for
        assert journaled, response.text
        with session_factory() as session:
            assert str(event_id).strip() and session.get(Event, str(event_id)) is not None


def test_nul_in_a_parameter_is_a_400_naming_it(hostile_client) -> None:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    in_path = hostile_client.get("/api/v1/apps/a%00", headers=headers)
    assert in_path.status_code == 400 and in_path.json()["field"] == "app"
    assert in_path.json()["detail"].startswith("app: may not contain U+0000")
    in_query = hostile_client.get("/api/v1/envs?label=envType%3Da%00", headers=headers)
    assert in_query.status_code == 400 and in_query.json()["field"] == "label"
    both = hostile_client.get("/api/v1/apps/a%00/envs?as_of=%00", headers=headers)
    assert both.status_code == 400 and both.json()["fields"] == ["app", "as_of"]
