"""A delivery sent again: tried again when it was never projected, reported when it contradicts
what was applied, a plain duplicate otherwise."""

from __future__ import annotations

import json

from sqlalchemy import select

from cmdb_sync.models import Env, Event
from tests.conftest import post_delivery
from tests.helpers import dump_state, env_event


def stored(session_factory, event_id: str) -> Event:
    with session_factory() as session:
        return session.get(Event, event_id)


def test_an_unsupported_delivery_sent_again_with_its_action_is_applied(client, session_factory) -> None:
    event = env_event("Create", 1000, event_id="e-unsupported")
    without_action = {
        "headers": {k: v for k, v in event["headers"].items() if k != "X-AppStack-Action"},
        "body": event["body"],
    }
    first = post_delivery(client, without_action)
    assert (first.status_code, first.json()["status"]) == (202, "unsupported")

    again = post_delivery(client, event)
    assert (again.status_code, again.json()["status"]) == (200, "applied")
    row = stored(session_factory, "e-unsupported")
    assert (row.status, row.action) == ("applied", "Create")
    with session_factory() as session:
        assert session.scalars(select(Env.name)).all() == ["prod"]


def test_a_failed_delivery_sent_again_fixed_is_applied(client, session_factory) -> None:
    event = env_event("Create", 1000, event_id="e-failed")
    broken = json.loads(json.dumps(event))
    broken["body"]["objectAttributes"]["labelList"] = "not a list"
    first = post_delivery(client, broken)
    assert (first.status_code, first.json()["status"]) == (202, "failed")

    again = post_delivery(client, event)
    assert (again.status_code, again.json()["status"]) == (200, "applied")
    row = stored(session_factory, "e-failed")
    assert (row.status, row.error) == ("applied", None)
    assert json.loads(row.body)["objectAttributes"]["labelList"] == event["body"]["objectAttributes"]["labelList"]


def test_an_applied_delivery_sent_again_with_another_body_is_a_reported_conflict(
    client, engine, session_factory
) -> None:
    event = env_event("Create", 1000, event_id="e-applied", lock_by="alice")
    assert post_delivery(client, event).json()["status"] == "applied"
    before = dump_state(engine)

    other = env_event("Create", 1000, event_id="e-applied", lock_by="mallory")
    again = post_delivery(client, other)
    assert (again.status_code, again.json()) == (200, {"event_id": "e-applied", "status": "duplicate"})
    assert dump_state(engine) == before
    assert json.loads(stored(session_factory, "e-applied").body)["objectAttributes"]["lockBy"] == "alice"
    assert "cmdb_sync_conflicting_redeliveries_total 1.0" in client.get("/metrics").text


def test_the_same_delivery_sent_again_is_a_plain_duplicate(client) -> None:
    event = env_event("Create", 1000, event_id="e-same")
    assert post_delivery(client, event).json()["status"] == "applied"
    assert post_delivery(client, event).json()["status"] == "duplicate"
    assert "cmdb_sync_conflicting_redeliveries_total 0.0" in client.get("/metrics").text


def test_a_failed_delivery_sent_again_unchanged_stays_a_duplicate(client, session_factory) -> None:
    event = env_event("Create", 1000, event_id="e-failed-same")
    event["body"]["objectAttributes"]["labelList"] = "not a list"
    assert post_delivery(client, event).json()["status"] == "failed"
    assert post_delivery(client, event).json()["status"] == "duplicate"
    assert stored(session_factory, "e-failed-same").status == "failed"
