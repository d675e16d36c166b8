"""How an import deals deliveries to its lanes: by a key every delivery of one object shares."""

from __future__ import annotations

import json

from cmdb_sync.archive import object_key, parse_line


def test_every_delivery_of_an_object_has_its_key_whatever_else_it_carries() -> None:
    env = {"objectKind": "Env", "objectAttributes": {"name": "prod", "appName": "shop"}}
    assert object_key({"X-AppStack-App": "shop"}, env) == "Env:shop"
    assert object_key({"x-appstack-app": "shop"}, {"objectKind": "Env", "objectAttributes": {"name": "prod"}}) == (
        "Env:shop"  # the header names the app where the body does not, as the projection reads it
    )
    change_order = {"objectKind": "ChangeOrder", "objectAttributes": {"sn": "co-1", "appName": "shop"}}
    moved = {"objectKind": "ChangeOrder", "objectAttributes": {"sn": "co-1", "appName": "other"}}
    assert object_key({"X-AppStack-App": "shop"}, change_order) == object_key({"X-AppStack-App": "other"}, moved)
    run = {"objectKind": "ReleaseStageExecution", "objectAttributes": {"engineInstanceId": "run-9"}}
    assert object_key({}, run) == "ReleaseStageExecution:run-9"
    assert object_key({}, {"objectKind": "App", "objectAttributes": {"name": "shop"}}) == "App:shop"


def test_a_body_that_names_nothing_still_gets_a_key() -> None:
    assert object_key({}, {"objectKind": "Env", "objectAttributes": "not an object"}) == "Env:"
    assert object_key({"X-AppStack-App": "shop"}, ["not", "a", "body"]) == "None:shop"


def test_parse_line_keeps_the_id_and_the_key_for_the_dealing() -> None:
    line = '{"headers": {"X-AppStack-App": "shop"}, "body": {"id": 42, "objectKind": "Env", "objectAttributes": {}}}'
    archived = parse_line(line)
    assert (archived.event_id, archived.object_key) == ("42", "Env:shop")


def test_parse_line_journals_the_body_as_the_line_holds_it() -> None:
    body_text = '{ "id": "e-1", "objectKind": "Env",  "note": "caf\\u00e9 é", "n": 1.50 }'
    archived = parse_line('{"headers": {"X-AppStack-Event": "Env"}, "body": ' + body_text + ', "received_at": null}')
    assert archived.raw == body_text.encode()
    assert json.loads(archived.raw) == {"id": "e-1", "objectKind": "Env", "note": "café é", "n": 1.5}


def test_parse_line_journals_a_bare_body_as_the_line_holds_it() -> None:
    line = '  {"id": "e-2", "objectKind": "App", "objectAttributes": {"name": "shop"}}\n'
    archived = parse_line(line)
    assert archived.raw == line.strip().encode()
    assert archived.headers["X-AppStack-App"] == "shop"


def test_parse_line_encodes_again_what_only_the_standard_library_reads() -> None:
    archived = parse_line('{"headers": {}, "body": {"id": "e-3", "objectKind": "Env", "x": NaN,   "y": 1}}')
    assert archived.raw == b'{"id":"e-3","objectKind":"Env","x":NaN,"y":1}'


def test_parse_line_keeps_a_body_archived_as_a_string() -> None:
    archived = parse_line(json.dumps({"headers": {}, "body": '{"id": "e-4"}'}))
    assert archived.raw == b'{"id": "e-4"}'
