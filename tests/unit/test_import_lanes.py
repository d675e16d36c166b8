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


def test_a_survey_finds_each_objects_newest_snapshot_and_leaves_the_file_at_its_start(tmp_path) -> None:
    from cmdb_sync.archive import survey

    def env(event_id: str, time: int, name: str = "prod") -> dict:
        return {"id": event_id, "orgId": "o", "time": time, "objectKind": "Env",
                "objectAttributes": {"name": name, "appName": "shop"}}  # fmt: skip

    lines = [
        json.dumps({"headers": {}, "body": env("e-1", 2000)}),
        json.dumps(env("e-2", 1000)),  # a bare body; older: not the newest
        json.dumps({"headers": {}, "body": env("e-0", 2000)}),  # the same time, a smaller id
        json.dumps(env("e-3", 500, name="qa")),
        json.dumps({"headers": {}, "body": {**env("e-4", 9000), "objectKind": "ChangeOrder"}}),  # not overwritten
        json.dumps(env("e-5", "not a time")),
        "not JSON",
        json.dumps({"headers": {}, "body": {**env("e-6", 9000), "objectAttributes": {"name": "prod"}}}),  # no app
    ]
    path = tmp_path / "deliveries.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with path.open(encoding="utf-8") as source:
        found = survey([source])
        assert source.readline() == lines[0] + "\n"
    assert found == {
        "Env\x1fo\x1fshop\x1fprod": (2000, "e-1"),
        "Env\x1fo\x1fshop\x1fqa": (500, "e-3"),
    }


def test_a_survey_of_too_many_objects_gives_up(tmp_path, monkeypatch) -> None:
    from cmdb_sync import archive

    monkeypatch.setattr(archive, "SURVEY_OBJECTS", 2)
    body = {"orgId": "o", "time": 1, "objectKind": "App"}
    lines = [json.dumps({**body, "id": f"e-{n}", "objectAttributes": {"name": f"app-{n}"}}) for n in range(3)]
    path = tmp_path / "deliveries.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with path.open(encoding="utf-8") as source:
        assert archive.survey([source]) is None
        assert source.readline() == lines[0] + "\n"
    with path.open(encoding="utf-8") as source:
        monkeypatch.setattr(archive, "SURVEY_OBJECTS", 3)
        assert len(archive.survey([source]) or {}) == 3
