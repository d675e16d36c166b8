"""The receiving contract: tokens, refusals, statuses, and what is (never) stored."""

from __future__ import annotations

import json

import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select

from cmdb_sync.app import create_app
from cmdb_sync.models import Env, Event
from cmdb_sync.settings import ConfigError
from tests.conftest import ROTATED_TOKEN, WEBHOOK_TOKEN, make_settings, post_delivery
from tests.helpers import app_event, delivery, env_event


def journal_count(session_factory) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(Event))


def assert_problem(response, status: int, *, mentions: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status
    assert mentions in problem["detail"]


@pytest.mark.parametrize("token", [None, "wrong", "", "secret "])
def test_missing_or_wrong_token_is_401_and_stores_nothing(client, session_factory, token) -> None:
    response = post_delivery(client, app_event("Create", 1000), token=token)
    assert_problem(response, 401, mentions="X-AppStack-Token")
    assert journal_count(session_factory) == 0
    metrics = client.get("/metrics").text
    reason = "missing_token" if not token else "wrong_token"
    assert f'cmdb_sync_rejected_deliveries_total{{reason="{reason}"}} 1.0' in metrics


def test_both_tokens_are_accepted_while_rotating(client, session_factory) -> None:
    assert post_delivery(client, app_event("Create", 1000)).status_code == 200
    assert post_delivery(client, app_event("Update", 2000), token=ROTATED_TOKEN).status_code == 200
    assert journal_count(session_factory) == 2


def test_server_refuses_to_start_without_a_token(migrated_url) -> None:
    with pytest.raises(ConfigError, match="CMDB_SYNC_WEBHOOK_TOKENS"):
        create_app(make_settings(migrated_url, webhook_tokens=[]))


def test_unauthenticated_mode_must_be_asked_for_and_then_accepts(engine, migrated_url, caplog) -> None:
    app = create_app(make_settings(migrated_url, webhook_tokens=[], webhook_allow_unauthenticated=True))
    assert "unauthenticated" in caplog.text
    with TestClient(app) as client:
        assert post_delivery(client, app_event("Create", 1000), token=None).json()["status"] == "applied"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"[]", "body"),
        (b'[{"id": "e1", "objectKind": "App"}]', "body"),
        (b'{"objectKind": "App", "time": 1}', "id"),
        (b'{"id": "e1", "time": 1}', "objectKind"),
        (b"", "body"),
    ],
)
def test_malformed_deliveries_are_400_naming_the_field_and_not_stored(client, session_factory, body, field) -> None:
    response = post_delivery(client, {"headers": {}}, body=body)
    assert_problem(response, 400, mentions=field)
    assert response.json()["field"] == field
    assert journal_count(session_factory) == 0


def test_header_kind_differing_from_object_kind_is_400(client, session_factory) -> None:
    event = app_event("Create", 1000)
    event["headers"]["X-AppStack-Event"] = "Env"
    assert_problem(post_delivery(client, event), 400, mentions="X-AppStack-Event")
    assert journal_count(session_factory) == 0


def test_body_over_the_limit_is_413(engine, migrated_url, session_factory) -> None:
    app = create_app(make_settings(migrated_url, max_body_bytes=1024))
    event = app_event("Create", 1000, description="x" * 2000)
    with TestClient(app) as client:
        assert_problem(post_delivery(client, event), 413, mentions="1024")
        small = app_event("Create", 1000)
        assert post_delivery(client, small).status_code == 200
    assert journal_count(session_factory) == 1


def test_duplicate_id_is_acknowledged_once_and_applied_once(client, session_factory) -> None:
    event = app_event("Create", 1000)
    assert post_delivery(client, event).json()["status"] == "applied"
    again = post_delivery(client, event)
    assert again.status_code == 200
    assert again.json() == {"event_id": event["body"]["id"], "status": "duplicate"}
    assert journal_count(session_factory) == 1


@pytest.mark.parametrize(
    ("kind", "action"),
    [("Pipeline", "Create"), ("App", "Archive"), ("Env", "StatusUpdate")],
)
def test_unknown_kinds_and_actions_are_journaled_as_unsupported(client, session_factory, kind, action) -> None:
    event = delivery(kind, action, {"name": "x"}, time=1000)
    response = post_delivery(client, event)
    assert response.status_code == 202
    assert response.json() == {"event_id": event["body"]["id"], "status": "unsupported"}
    with session_factory() as session:
        stored = session.get(Event, event["body"]["id"])
    assert stored is not None and stored.status == "unsupported" and stored.kind == kind


def test_missing_action_header_is_journaled_as_unsupported(client, session_factory) -> None:
    event = app_event("Create", 1000)
    del event["headers"]["X-AppStack-Action"]
    response = post_delivery(client, event)
    assert (response.status_code, response.json()["status"]) == (202, "unsupported")


@pytest.mark.parametrize(
    "attributes",
    [
        {"name": "prod", "appName": "shop", "labelList": "envType=prod"},
        {"name": ["prod"], "appName": "shop"},
        {"name": "prod", "appName": "shop", "spec": {"rolloutStrategy": "fast"}},
        "not an object",
        None,
    ],
)
def test_projection_error_is_journaled_as_failed_and_answered_202(client, session_factory, attributes) -> None:
    event = delivery("Env", "Create", attributes, time=1000)
    response = post_delivery(client, event)
    assert response.status_code == 202
    answer = response.json()
    assert answer["status"] == "failed"
    assert "objectAttributes" in answer["error"]
    with session_factory() as session:
        stored = session.get(Event, event["body"]["id"])
        assert session.scalar(select(func.count()).select_from(Env)) == 0
    assert stored.status == "failed"
    assert stored.error == answer["error"]
    assert json.loads(stored.body) == event["body"]


def test_bad_time_is_journaled_as_failed(client, session_factory) -> None:
    event = app_event("Create", "next tuesday")
    response = post_delivery(client, event)
    assert (response.status_code, response.json()["status"]) == (202, "failed")
    assert "time" in response.json()["error"]
    with session_factory() as session:
        stored = session.get(Event, event["body"]["id"])
    assert stored.time is None and stored.status == "failed"


def test_missing_org_is_journaled_as_failed(client) -> None:
    response = post_delivery(client, app_event("Create", 1000, org=None))
    assert (response.status_code, response.json()["status"]) == (202, "failed")
    assert "orgId" in response.json()["error"]


@pytest.mark.parametrize(
    ("time", "stored"),
    [
        (1722236764000, "2024-07-29T07:06:04+00:00"),
        ("1722236764000", "2024-07-29T07:06:04+00:00"),
        ("2024-07-29T07:06:04.104+00:00", "2024-07-29T07:06:04.104000+00:00"),
        ("2024-07-29T07:06:04.104Z", "2024-07-29T07:06:04.104000+00:00"),
        ("2024-07-29T15:06:04.104+08:00", "2024-07-29T07:06:04.104000+00:00"),
    ],
)
def test_the_three_time_forms_are_stored_as_utc(client, session_factory, time, stored) -> None:
    event = app_event("Create", time)
    assert post_delivery(client, event).json()["status"] == "applied"
    with session_factory() as session:
        row = session.get(Event, event["body"]["id"])
    assert row.time.isoformat() == stored


def test_nul_characters_are_journaled_verbatim_and_projected(client, session_factory) -> None:
    event = env_event("Create", 1000, name="prod\u0000x", description="line\u0000break")
    body = json.dumps(event["body"]).encode()
    assert b"\\u0000" in body
    response = post_delivery(client, event, body=body)
    assert (response.status_code, response.json()["status"]) == (200, "applied")
    with session_factory() as session:
        stored = session.get(Event, event["body"]["id"])
        env = session.scalars(select(Env)).one()
    assert stored.body == body.decode()
    assert env.name == "prod\ufffdx"
    assert env.description == "line\ufffdbreak"


def test_database_unavailable_is_503_with_retry_after(databases) -> None:
    settings = make_settings("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    with TestClient(create_app(settings)) as client:
        response = post_delivery(client, app_event("Create", 1000))
        assert_problem(response, 503, mentions="database unavailable")
        assert response.headers["retry-after"] == "5"
        # what to do, and nothing of the database's name, address or the driver's words
        assert "send it again later" in response.json()["detail"]
        assert not any(leak in response.text for leak in ("nowhere", "127.0.0.1", "connection", "psycopg"))
        readiness = client.get("/readyz")
        assert readiness.status_code == 503


def test_health_and_readiness(client) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


def test_unknown_route_is_problem_details(client) -> None:
    assert_problem(client.get("/nope"), 404, mentions="Not Found")


def test_metrics_count_deliveries_by_kind_action_and_status(client) -> None:
    post_delivery(client, app_event("Create", 1000))
    duplicate = app_event("Update", 2000)
    post_delivery(client, duplicate)
    post_delivery(client, duplicate)
    post_delivery(client, delivery("Pipeline", "Run", {}, time=1))
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'cmdb_sync_deliveries_total{action="Create",kind="App",status="applied"} 1.0' in text
    assert 'cmdb_sync_deliveries_total{action="Update",kind="App",status="duplicate"} 1.0' in text
    assert 'cmdb_sync_deliveries_total{action="other",kind="other",status="unsupported"} 1.0' in text
    assert "cmdb_sync_ingest_seconds_count 4.0" in text


def test_a_delivery_is_received_ahead_of_the_handler_or_by_it_and_answered_alike(
    client, session_factory, monkeypatch
) -> None:
    """A delivery with an accepted token and a Content-Length is received by the route's own
    middleware, ahead of Litestar's handler; one sent in chunks (no length) or with a wrong token
    goes on to the handler. The answers are the same."""
    from cmdb_sync.api import webhooks

    handled = []
    real = webhooks.authenticate

    def authenticate(state, headers):  # noqa: ANN001, ANN202 - the handler's first step, counted
        handled.append(headers.get("x-appstack-event"))
        return real(state, headers)

    monkeypatch.setattr(webhooks, "authenticate", authenticate)
    direct_event = env_event("Create", 1000, name="direct")
    direct = post_delivery(client, direct_event)
    assert (direct.status_code, handled) == (200, [])

    chunked_event = env_event("Create", 1000, name="chunked")
    body = json.dumps(chunked_event["body"]).encode()
    headers = {**chunked_event["headers"], "X-AppStack-Token": WEBHOOK_TOKEN, "Content-Type": "application/json"}
    chunked = client.post("/webhooks/appstack", content=iter([body[:10], body[10:]]), headers=headers)
    assert (chunked.status_code, handled) == (200, ["Env"])
    assert "content-length" not in {k.lower() for k in chunked.request.headers}

    assert direct.json()["status"] == chunked.json()["status"] == "applied"
    assert set(direct.json()) == set(chunked.json()) == {"event_id", "status"}
    assert direct.headers["content-type"] == chunked.headers["content-type"] == "application/json"
    again = post_delivery(client, direct_event)
    assert (again.status_code, again.json()) == (200, {"event_id": direct.json()["event_id"], "status": "duplicate"})

    wrong = post_delivery(client, env_event("Update", 2000, name="direct"), token="wrong")
    assert_problem(wrong, 401, mentions="X-AppStack-Token")
    assert handled == ["Env", "Env"]
    assert journal_count(session_factory) == 2
