"""How an import deals deliveries to its lanes: by a key every delivery of one object shares."""

from __future__ import annotations

import json

import pytest

from cmdb_sync.archive import _any_line, _wrapped_line, export_line, object_key, parse_line
from cmdb_sync.errors import BadDelivery


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


def _seed_lines(seed: dict) -> list[str]:
    lines = []
    for delivery in seed.values():
        lines.append(json.dumps({"headers": delivery["headers"], "body": delivery["body"]}, ensure_ascii=False))
        exported = {**delivery, "received_at": "2024-12-15T03:23:01.572000+00:00"}
        lines.append(json.dumps(exported, ensure_ascii=True, indent=None, separators=(", ", ": ")))
    return lines


def test_a_wrapped_line_is_read_in_one_pass_as_the_whole_line_reading_reads_it(seed) -> None:
    """The dealer's one-pass reading (body left as its text, only its naming fields read) answers
    what reading the whole line answers, for every kind the seed holds, exported or not."""
    lines = _seed_lines(seed)
    attributes = json.loads(lines[2])["body"]["objectAttributes"]
    lines += [
        '{"headers": {"x-appstack-app": "shop"}, "body": {"id": 7, "objectKind": "Env", "time": "1700000000000",'
        ' "orgId": "o", "objectAttributes": {"name": "prod"}}}',  # header casing, a numeric id, a text time
        '{"headers": null, "body": {"id": true, "objectKind": ["Env"], "objectAttributes": null}}',
        '{"body": {"id": "e-9", "objectKind": "App", "orgId": 5, "objectAttributes": {"name": "shop"}}, "x": [1]}',
        json.dumps({"headers": {}, "body": {"id": "e-8", "objectKind": "Env", "objectAttributes": attributes}}),
    ]
    for line in lines:
        one_pass = _wrapped_line(line)
        assert one_pass is not None, line
        assert one_pass == _any_line(line), line


@pytest.mark.parametrize(
    "line",
    [
        '{"id": "e-2", "objectKind": "App", "objectAttributes": {"name": "shop"}}',  # a bare body
        '{"headers": {"X-AppStack-Event": 5}, "body": {"id": "e-1"}}',  # headers not of strings
        '{"headers": [], "body": {"id": "e-1"}}',  # no headers, as the whole reading takes it
        '{"headers": {}, "body": {"id": "e-3", "x": NaN}}',  # not strict JSON
        '{"headers": {}, "body": "{\\"id\\": \\"e-4\\"}"}',  # a body archived as a string
        '{"headers": {}, "body": {"id": "e-5", "objectAttributes": ["not", "an", "object"]}}',
        '{"headers": {}, "body": {"id": "e-6"}, "objectKind": "Env"}',  # a bare body with a "body"
        "[1, 2]",
    ],
)
def test_any_other_line_is_read_whole_as_before(line: str) -> None:
    assert _wrapped_line(line) is None
    try:
        expected: object = _any_line(line)
    except BadDelivery as exc:
        expected = str(exc)
    try:
        answered: object = parse_line(line)
    except BadDelivery as exc:
        answered = str(exc)
    assert answered == expected


@pytest.mark.parametrize("received_at", ['"yesterday"', '"2024-12-15T03:23:01"'])
def test_a_bad_received_at_is_refused_by_either_reading(received_at: str) -> None:
    line = '{"headers": {}, "body": {"id": "e-6"}, "received_at": ' + received_at + "}"
    refused = []
    for reading in (_wrapped_line, _any_line):
        with pytest.raises(BadDelivery) as exc:
            reading(line)
        refused.append(str(exc.value))
    assert refused[0] == refused[1]
    assert refused[0].startswith("received_at: ")


def test_a_number_beyond_a_float_is_journaled_as_the_line_holds_it() -> None:
    """The webhook journals such a body verbatim; an imported line now too (both read back as
    the same body)."""
    line = '{"headers": {}, "body": {"id": "e-7", "objectKind": "Env", "n": 1e400}}'
    archived = parse_line(line)
    assert archived.raw == b'{"id": "e-7", "objectKind": "Env", "n": 1e400}'
    assert json.loads(archived.raw) == json.loads(_any_line(line).raw)


def test_a_line_nested_too_deep_for_any_reader_is_refused_alone() -> None:
    deep = '{"headers": {}, "body": {"id": "e-8", "objectKind": "Env", "objectAttributes": ' + "[" * 100_000
    line = deep + "]" * 100_000 + "}}"
    with pytest.raises(BadDelivery, match="nested deeper than 64 levels"):
        parse_line(line)


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


@pytest.mark.parametrize(
    ("body", "verbatim"),
    [
        ('{"id": "e1",  "objectKind": "Env", "name": "\\u4e2d"}', True),  # spacing and escapes kept
        ('{"id": "e1",\n "objectKind": "Env"}', False),  # a line break cannot go on one line
        (' {"id": "e1", "objectKind": "Env"}', False),  # the line would not keep the space
        ('{"id": "e1", "objectKind": "Env", "x": NaN}', False),  # only the standard library reads it
        ('{"id": "e1"}, "received_at": "1999-01-01T00:00:00+00:00"', True),  # not one object: kept as a string
    ],
)
def test_an_export_line_holds_the_body_as_journaled_when_it_can(body: str, verbatim: bool) -> None:
    """Importing an export journals the bodies it holds as its lines hold them: byte for byte
    where the export wrote them verbatim, and always the same JSON."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    received = datetime(2025, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    line = export_line(SimpleNamespace(headers={"X-AppStack-Event": "Env"}, body=body, received_at=received))
    assert "\n" not in line
    assert list(json.loads(line)) == ["headers", "body", "received_at"]
    read = parse_line(line)
    assert read.received_at == received
    if verbatim:
        assert read.raw.decode() == body
    else:
        assert read.raw.decode() != body
        assert json.dumps(json.loads(read.raw), sort_keys=True) == json.dumps(json.loads(body), sort_keys=True)
