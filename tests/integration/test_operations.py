"""Operator commands: replay (--failed, --rebuild), import and export, through the CLI."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient
from sqlalchemy import func, select

from cmdb_sync import migrate
from cmdb_sync.app import create_app
from cmdb_sync.archive import EXPORTED_COLUMNS, received_order
from cmdb_sync.cli import main
from cmdb_sync.ingest import Delivery, ingest, ingest_batch
from cmdb_sync.models import Env, Event
from cmdb_sync.projections import REGISTRY
from tests.conftest import FIXTURES, _empty_all_tables, make_settings, post_delivery
from tests.helpers import app_event, env_event, orchestration_event, raw, variable_group_event

ADMIN = "admin"
READ_ROUTES = [
    "/api/v1/apps?include_deleted=true",
    "/api/v1/apps",
    "/api/v1/envs?include_deleted=true&limit=500",
    "/api/v1/envs",
    "/api/v1/envs?label=envType=production",
    "/api/v1/apps/shop/envs?include_deleted=true",
    "/api/v1/apps/shop/envs/prod?include_deleted=true",
    "/api/v1/apps/shop/variable-groups?include_deleted=true&reveal=true",
    "/api/v1/apps/shop/orchestrations?include_deleted=true",
    "/api/v1/apps/other/envs?include_deleted=true",
    "/api/v1/apps/myapp-demo/envs?include_deleted=true&org_id=60d54f3daccf2bbd6659f3ad",
    "/api/v1/apps/myapp-demo/change-orders?org_id=620321f073741507cb7d0cfd",
    "/api/v1/change-orders/32468993abb14653ae9d86cf5d1cac98",
    "/api/v1/apps/myapp-demo/change-requests?org_id=630de053ca912501d6c92e10",
    "/api/v1/release-stage-executions",
    "/api/v1/envs?limit=2",
]


def cli(url: str, *args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), env={"CMDB_SYNC_DATABASE_URL": url}, input=input)


def rich_event_set(seed: dict[str, Any]) -> list[dict[str, Any]]:
    events = list(seed.values())
    for i in range(12):
        events.append(env_event("Create", 1000 + i, name=f"env-{i}", labels={"envType": "production", "n": str(i % 3)}))
        events.append(
            env_event("Update", 5000 + i, name=f"env-{i}", labels={"envType": "test"}, lock_by="u" if i % 2 else None)
        )
    events += [
        app_event("Create", 500, description="first"),
        app_event("Delete", 3000),
        app_event("Create", 4000, description="again"),
        env_event("Create", 6000),
        env_event("Delete", 7000, name="env-3"),
        variable_group_event("Create", 1000, values={"a": "1"}),
        variable_group_event("Update", 4500, values={"a": "2", "b": "3"}),
        orchestration_event("Create", 2000, sn="old@K"),
        orchestration_event("Create", 4100, sn="new@K"),
        env_event("Create", 1000, name="x", app="other", org="org-2"),
        delivery_with_bad_attributes(),
    ]
    return events


def delivery_with_bad_attributes() -> dict[str, Any]:
    event = env_event("Create", 9000, name="bad")
    event["body"]["objectAttributes"]["labelList"] = "oops"
    return event


def read_everything(client: TestClient) -> dict[str, Any]:
    answers = {}
    for route in READ_ROUTES:
        response = client.get(route, headers={"Authorization": f"Bearer {ADMIN}"})
        answers[route] = (response.status_code, response.json())
    return answers


@pytest.fixture
def api(engine, migrated_url):
    app = create_app(make_settings(migrated_url, api_admin_tokens=[ADMIN]))
    with TestClient(app) as client:
        yield client


def test_rebuild_serves_exactly_what_was_served_before(api, engine, migrated_url, seed) -> None:
    for event in rich_event_set(seed):
        post_delivery(api, event)
    before = read_everything(api)
    assert before["/api/v1/apps/shop/envs?include_deleted=true"][0] == 200
    result = cli(migrated_url, "replay", "--rebuild")
    assert result.exit_code == 0, result.output
    assert "failed: 1" in result.output
    assert read_everything(api) == before


def test_a_stopped_rebuild_continues_where_it_stopped(api, engine, migrated_url, seed, monkeypatch) -> None:
    from cmdb_sync import replay as replay_module
    from cmdb_sync.models import RebuildRun

    events = rich_event_set(seed)
    for event in events:
        post_delivery(api, event)
    before = read_everything(api)
    real_batch = replay_module._replay_batch
    calls = {"n": 0}

    def stopped_after_two(*args, **kwargs):  # the process dies during the third batch
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(replay_module, "REBUILD_LANES", 1)  # the walk in this process, where the stop is
    monkeypatch.setattr(replay_module, "_replay_batch", stopped_after_two)
    stopped = cli(migrated_url, "replay", "--rebuild", "--batch-size", "2")
    assert stopped.exit_code != 0
    with engine.connect() as conn:
        (run,) = conn.execute(select(RebuildRun.done, RebuildRun.finished_at)).all()
    assert run == (4, None)  # two batches of two, committed with their position
    monkeypatch.setattr(replay_module, "_replay_batch", real_batch)
    resumed = cli(migrated_url, "replay", "--rebuild", "--batch-size", "2")
    assert resumed.exit_code == 0, resumed.output
    assert "continuing the rebuild begun at" in resumed.output and "4 events were replayed" in resumed.output
    assert f"{len(events) - 4} processed" in resumed.output  # the rest, not everything again
    assert read_everything(api) == before
    with engine.connect() as conn:
        assert conn.execute(select(RebuildRun.done, RebuildRun.finished_at.is_not(None))).all() == [(len(events), True)]
    again = cli(migrated_url, "replay", "--rebuild")  # the last one finished: a new one starts over
    assert f"{len(events)} processed" in again.output and "continuing" not in again.output
    assert read_everything(api) == before


def test_restart_starts_a_stopped_rebuild_over(engine, migrated_url, session_factory) -> None:
    from cmdb_sync.models import RebuildRun

    for event in (app_event("Create", 1000), env_event("Create", 2000)):
        ingest(session_factory, event["headers"], raw(event))
    with engine.begin() as conn:  # a rebuild that stopped after the first event
        conn.execute(RebuildRun.__table__.insert().values(started_at=datetime(2026, 1, 1, tzinfo=UTC), done=1))
    restarted = cli(migrated_url, "replay", "--rebuild", "--restart")
    assert restarted.exit_code == 0, restarted.output
    assert "2 processed" in restarted.output and "continuing" not in restarted.output
    assert cli(migrated_url, "replay", "--restart").exit_code == 2


def test_rebuild_refuses_narrowing_options(migrated_url) -> None:
    result = cli(migrated_url, "replay", "--rebuild", "--kind", "Env")
    assert result.exit_code == 2
    assert "--rebuild re-applies the whole journal" in result.output


def test_replay_failed_applies_events_again_after_a_fix(engine, session_factory, migrated_url, monkeypatch) -> None:
    def broken(envelope):
        msg = "a bug in the Env projection"
        raise RuntimeError(msg)

    monkeypatch.setitem(REGISTRY, "Env", dataclasses.replace(REGISTRY["Env"], snapshot=broken))
    event = env_event("Create", 1000)
    result = ingest(session_factory, event["headers"], raw(event))
    assert (result.status, result.error) == ("failed", "RuntimeError: a bug in the Env projection")
    app = app_event("Create", 500)
    ingest(session_factory, app["headers"], raw(app))
    monkeypatch.undo()  # the fix is deployed

    replayed = cli(migrated_url, "replay", "--failed")
    assert replayed.exit_code == 0, replayed.output
    assert "1 processed (applied: 1)" in replayed.output
    with session_factory() as session:
        stored = session.get(Event, event["body"]["id"])
        assert session.scalars(select(Env.name)).all() == ["prod"]
    assert (stored.status, stored.error) == ("applied", None)
    again = cli(migrated_url, "replay", "--failed")
    assert "0 processed" in again.output


def test_replay_walks_untimed_and_timed_events_in_batches_once_each(engine, session_factory) -> None:
    import io

    from cmdb_sync.progress import reporting
    from cmdb_sync.replay import Selection, replay

    untimed = [app_event("Create", "not a time", event_id=f"u{i}") for i in range(5)]
    timed = [env_event("Create", 1000, name=f"e{i}", event_id=f"t{i}") for i in range(5)]  # one millisecond
    for event in untimed + timed:
        ingest(session_factory, event["headers"], raw(event))
    with reporting("replay", stream=io.StringIO()) as reporter:
        replay(session_factory, Selection(), reporter, rebuild=True, batch_size=2)
    assert dict(reporter.tally.counts) == {"failed": 5, "applied": 5}
    with session_factory() as session:
        assert sorted(session.scalars(select(Env.name))) == [f"e{i}" for i in range(5)]


def test_replay_rewrites_only_the_journal_rows_whose_status_changes(engine, session_factory) -> None:
    from cmdb_sync.ingest import record_statuses
    from cmdb_sync.status import Status

    events = [app_event("Create", 500), env_event("Create", 1000), env_event("Update", 2000, event_id="u")]
    for event in events:
        ingest(session_factory, event["headers"], raw(event))
    ids = [event["body"]["id"] for event in events]
    outcomes = [(ids[0], (Status.APPLIED, None)), (ids[1], (Status.STALE, None)), ("u", (Status.FAILED, "why"))]

    def writes(conn) -> int:  # rows written by the statement: PostgreSQL gives a rewritten row a new xmin
        if engine.dialect.name == "postgresql":
            versions = conn.exec_driver_sql("SELECT id, xmin::text FROM events").all()
            record_statuses(conn, outcomes)
            return len(set(versions) - set(conn.exec_driver_sql("SELECT id, xmin::text FROM events").all()))
        raw_sqlite = conn.connection.dbapi_connection
        before = raw_sqlite.total_changes
        record_statuses(conn, outcomes)
        return raw_sqlite.total_changes - before

    with engine.begin() as conn:
        assert writes(conn) == 2  # the app's row already says applied
    with engine.begin() as conn:
        assert writes(conn) == 0  # all three say so now
    with session_factory() as session:
        stored = {event.id: (event.status, event.error) for event in session.scalars(select(Event))}
    assert stored == {ids[0]: ("applied", None), ids[1]: ("stale", None), "u": ("failed", "why")}


def test_replay_narrowed_by_kind_and_since(engine, session_factory, migrated_url) -> None:
    for event in (app_event("Create", 1000), env_event("Create", 2000), env_event("Update", 3000, name="b")):
        ingest(session_factory, event["headers"], raw(event))
    result = cli(migrated_url, "replay", "--kind", "Env", "--since", "1970-01-01T00:00:02.500")
    assert result.exit_code == 0, result.output
    assert "1 processed (stale: 1)" in result.output  # already applied: replaying is idempotent


def test_export_then_import_into_the_same_database_changes_nothing(api, engine, migrated_url, seed, tmp_path) -> None:
    for event in rich_event_set(seed):
        post_delivery(api, event)
    before = read_everything(api)
    exported = cli(migrated_url, "export", "-o", str(tmp_path / "journal.jsonl"))
    assert exported.exit_code == 0, exported.output
    lines = (tmp_path / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(rich_event_set(seed))
    first = json.loads(lines[0])
    assert set(first) == {"headers", "body", "received_at"}
    assert first["headers"]["x-appstack-token"] == "[redacted]"
    imported = cli(migrated_url, "import", str(tmp_path / "journal.jsonl"))
    assert imported.exit_code == 0, imported.output
    assert f"{len(lines)} processed (duplicate: {len(lines)})" in imported.output
    assert read_everything(api) == before


def test_import_of_an_export_into_an_empty_database_rebuilds_the_same_state(
    api, engine, migrated_url, seed, tmp_path
) -> None:
    for event in rich_event_set(seed):
        post_delivery(api, event)
    before = read_everything(api)
    with engine.connect() as conn:
        journal_before = conn.execute(
            select(Event.id, Event.received_at, Event.body, Event.status).order_by(Event.id)
        ).all()
    assert cli(migrated_url, "export", "-o", str(tmp_path / "journal.jsonl")).exit_code == 0
    _empty_all_tables(engine)
    assert read_everything(api) != before
    imported = cli(migrated_url, "import", str(tmp_path / "journal.jsonl"))
    assert imported.exit_code == 0, imported.output
    assert read_everything(api) == before
    with engine.connect() as conn:
        journal_after = conn.execute(select(Event.id, Event.received_at, Event.body).order_by(Event.id)).all()
    # received times survive the round trip, and every body byte for byte (the senders' spacing was
    # re-encoded away by the export before)
    assert journal_after == [(i, r, b) for i, r, b, _ in journal_before]


def test_an_export_gives_deliveries_received_in_one_millisecond_their_statuses_again(
    engine, session_factory, migrated_url, tmp_path
) -> None:
    """A group-commit batch's deliveries share their received time (ms): a stale one and the newer
    one of its object that overtook it must not change places in the export (by id, "a-" would go
    first and import as applied)."""
    at = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    newer = env_event("Update", 9000, name="e", event_id="z-newer")
    stale = env_event("Update", 5000, name="e", event_id="a-stale")
    other = env_event("Update", 7000, name="f", event_id="m-other")
    later = env_event("Update", 8000, name="f", event_id="b-later")
    arrived = [newer, stale, later, other]  # received in this order, within one millisecond
    ingest_batch(session_factory, [Delivery(e["headers"], raw(e), at) for e in arrived])

    def statuses() -> dict[str, str]:
        with engine.connect() as conn:
            return dict(conn.execute(select(Event.id, Event.status)).all())

    before = statuses()
    assert before == {"z-newer": "applied", "a-stale": "stale", "b-later": "applied", "m-other": "stale"}
    assert cli(migrated_url, "export", "-o", str(tmp_path / "journal.jsonl")).exit_code == 0
    exported = [json.loads(line)["body"]["id"] for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    assert exported == ["b-later", "z-newer", "a-stale", "m-other"]
    # read a row at a time, a millisecond is still ordered whole (held back across reads)
    one_by_one = [row.id for rows in received_order(session_factory, select(*EXPORTED_COLUMNS), 1) for row in rows]
    assert one_by_one == exported
    _empty_all_tables(engine)
    imported = cli(migrated_url, "import", str(tmp_path / "journal.jsonl"))
    assert imported.exit_code == 0, imported.output
    assert statuses() == before


def test_export_narrowed_by_kind(engine, session_factory, migrated_url) -> None:
    for event in (app_event("Create", 1000), env_event("Create", 2000)):
        ingest(session_factory, event["headers"], raw(event))
    result = cli(migrated_url, "export", "--kind", "Env")
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert [json.loads(line)["body"]["objectKind"] for line in lines] == ["Env"]


def test_import_from_stdin_with_bad_lines_and_bare_bodies(engine, session_factory, migrated_url, seed) -> None:
    good = seed["03_Env_Create"]
    bare_update = seed["04_Env_Update"]["body"]
    lines = [
        json.dumps({"headers": good["headers"], "body": good["body"]}, ensure_ascii=False),
        "{not json",
        "",
        json.dumps([1, 2]),
        json.dumps({"headers": {}, "body": {"objectKind": "Env"}}),
        json.dumps(bare_update, ensure_ascii=False),
        json.dumps({"headers": {"X-AppStack-Event": 5}, "body": good["body"]}),
        json.dumps({"headers": {}, "body": {**good["body"], "objectKind": ["Env"]}}),
        json.dumps({**bare_update, "objectKind": {"kind": "Env"}}),
        json.dumps({"headers": good["headers"], "body": {**good["body"], "id": "lone-1", "x": "\ud800"}}),
        json.dumps({"headers": {**good["headers"], "X-AppStack-App": "\udc00"}, "body": good["body"]}),
        json.dumps({"headers": good["headers"], "body": "\ud800"}),  # a body archived as a string
    ]
    result = cli(migrated_url, "import", "-", input="\n".join(lines) + "\n")
    assert result.exit_code == 2  # something was skipped: say so in the exit status too
    assert "line 2: skipped: not valid JSON" in result.output
    assert "line 4: skipped: not a JSON object" in result.output
    assert "line 5: skipped: id: required" in result.output
    assert "line 7: skipped: headers: must be an object of strings" in result.output
    assert "line 8: skipped: objectKind: required, a non-empty string" in result.output  # not a crash
    assert "line 9: skipped: objectKind: required, a non-empty string" in result.output
    assert "line 10: skipped: body: holds a lone surrogate" in result.output  # not a crash either
    assert "line 11: skipped: headers: hold a lone surrogate" in result.output
    assert "line 12: skipped: body: holds a lone surrogate" in result.output  # was a traceback
    assert "11 processed (applied: 2, invalid: 9)" in result.output
    with session_factory() as session:
        env = session.scalars(select(Env)).one()
        events = session.scalar(select(func.count()).select_from(Event))
    assert env.lock_by == "61c92a37ae805dbacc5b9f78"  # the bare body applied, as an Update of the env
    assert events == 2


def test_an_import_refuses_a_line_nested_too_deep_alone_even_the_first(
    engine, session_factory, migrated_url, seed
) -> None:
    """A line deeper than any JSON reader goes was a traceback that stopped the import (the first
    line's too: the file's format is judged by it)."""
    good = seed["03_Env_Create"]
    deep = '{"headers": {}, "body": {"id": "deep-1", "objectKind": "Env", "objectAttributes": '
    deep += "[" * 100_000 + "]" * 100_000 + "}}"
    lines = [deep, json.dumps({"headers": good["headers"], "body": good["body"]}, ensure_ascii=False), deep]
    result = cli(migrated_url, "import", "-", input="\n".join(lines) + "\n")
    assert result.exit_code == 2, result.output
    assert "line 1: skipped: nested deeper than 64 levels" in result.output
    assert "line 3: skipped: nested deeper than 64 levels" in result.output
    assert "3 processed (applied: 1, invalid: 2)" in result.output
    with session_factory() as session:
        assert session.scalars(select(Event.id)).all() == [good["body"]["id"]]


def test_an_import_journals_each_body_as_its_line_holds_it_and_a_redelivery_is_a_duplicate(
    engine, session_factory, migrated_url, seed
) -> None:
    """The journal keeps an imported body's own text (spacing, escapes); the same delivery sent
    compactly afterwards is the same event: a duplicate, not a conflict."""
    deliveries = [seed["03_Env_Create"], seed["04_Env_Update"]]
    lines = [
        json.dumps({"headers": d["headers"], "body": d["body"]}, ensure_ascii=True, indent=None) for d in deliveries
    ]
    result = cli(migrated_url, "import", "-", input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    with session_factory() as session:
        bodies = {row.id: row.body for row in session.execute(select(Event.id, Event.body))}
    for delivery in deliveries:
        as_in_the_line = json.dumps(delivery["body"], ensure_ascii=True)  # "\\u6d4b..." escapes, ", " spacing
        assert bodies[delivery["body"]["id"]] == as_in_the_line
        again = ingest(session_factory, delivery["headers"], raw(delivery))  # compact, UTF-8
        assert (again.status.value, again.conflict) == ("duplicate", False)


def test_import_of_the_seed_fixture_files_builds_what_posting_them_builds(
    api, engine, migrated_url, seed, tmp_path
) -> None:
    """The README's quick start loads the seed this way: several files, each one pretty-printed delivery."""
    for name in sorted(seed):
        post_delivery(api, seed[name])
    posted = read_everything(api)
    _empty_all_tables(engine)
    files = sorted((FIXTURES / "seed").glob("*.json"))
    imported = cli(migrated_url, "import", *map(str, files))
    assert imported.exit_code == 0, imported.output
    assert f"{len(files)} processed (applied: 14, stale: 1)" in imported.output
    assert read_everything(api) == posted


def test_import_of_a_json_array_and_of_a_file_that_is_neither(engine, migrated_url, seed, tmp_path) -> None:
    array = tmp_path / "deliveries.json"
    array.write_text(json.dumps([seed["01_App_Create"], {"headers": {}}, seed["03_Env_Create"]], indent=2))
    one_line = tmp_path / "one-line.json"  # an array on one line is not JSON Lines
    one_line.write_text(json.dumps([seed["04_Env_Update"]]))
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "headers": {\n')
    imported = cli(migrated_url, "import", str(array), str(broken), str(one_line))
    assert imported.exit_code == 2
    assert f"{array} item 2: skipped: id: required" in imported.output
    assert f"{broken}: skipped: not JSON Lines, nor one JSON document" in imported.output
    assert "5 processed (applied: 3, invalid: 2)" in imported.output
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Env)) == 1


def test_operator_commands_refuse_a_postgresql_schema_that_is_behind(databases) -> None:
    url = databases.fresh("postgresql")
    migrate.upgrade(url, "0001")
    result = cli(url, "replay", "--failed")
    assert result.exit_code == 1
    assert "cmdb-sync db upgrade" in result.output


def test_rebuild_while_deliveries_arrive_converges(engine, session_factory) -> None:
    import io
    import random
    import threading

    from cmdb_sync.progress import reporting
    from cmdb_sync.replay import Selection, replay
    from tests.helpers import dump_state

    rng = random.Random(7)
    before = [
        env_event(
            rng.choice(["Create", "Update", "Delete"]),
            rng.randrange(1000, 9000),
            name=f"e{rng.randrange(6)}",
            labels={"n": str(i)},
        )
        for i in range(60)
    ] + [app_event("Create", 500), app_event("Delete", 4000), app_event("Create", 4500)]
    during = [
        env_event(
            rng.choice(["Update", "Delete"]),
            rng.randrange(1000, 12000),
            name=f"e{rng.randrange(6)}",
            labels={"m": str(i)},
        )
        for i in range(40)
    ]
    for event in before:
        ingest(session_factory, event["headers"], raw(event))

    rebuilt = []

    def rebuild() -> None:
        with reporting("rebuild", stream=io.StringIO()) as reporter:
            replay(session_factory, Selection(), reporter, rebuild=True, batch_size=4)
        rebuilt.append(True)

    worker = threading.Thread(target=rebuild)
    worker.start()
    for event in during:
        ingest(session_factory, event["headers"], raw(event))
    worker.join()
    assert rebuilt == [True], "the rebuild did not finish"
    concurrent_result = dump_state(engine)

    _empty_all_tables(engine)
    for event in sorted(before + during, key=lambda e: (e["body"]["time"], e["body"]["id"])):
        ingest(session_factory, event["headers"], raw(event))
    assert concurrent_result == dump_state(engine)


@pytest.mark.postgres_only
def test_readers_see_the_whole_old_state_until_the_swap_and_deliveries_meanwhile_are_kept(
    databases, monkeypatch
) -> None:
    """PostgreSQL rebuilds beside the live tables: a reader polling all through it never sees an
    empty or partial inventory, and what the server receives during it is in the result."""
    import threading

    from cmdb_sync import replay as replay_module
    from cmdb_sync.db import Database
    from cmdb_sync.progress import reporting
    from cmdb_sync.read import inventory
    from cmdb_sync.read.common import Window
    from cmdb_sync.replay import Selection, replay

    url = databases.fresh("postgresql")  # SQLite rebuilds in place (README: replay --rebuild)
    migrate.upgrade(url)
    database = Database.open(url)
    engine, session_factory = database.engine, database.sessions
    for n in range(60):
        event = env_event("Create", 1000 + n, name=f"env-{n:02d}", event_id=f"c{n}")
        ingest(session_factory, event["headers"], raw(event))

    def envs() -> list[tuple[str, str | None]]:
        with session_factory() as session:
            page = inventory.list_envs(session, Window(500, None), app=None, org_id=None, labels=[])
            return [(env.name, env.lock_by) for env in page.items]

    before = envs()
    assert len(before) == 60
    seen: list[list[tuple[str, str | None]]] = []
    stop = threading.Event()

    failures: list[BaseException] = []

    def poll() -> None:
        while not stop.is_set():
            try:
                seen.append(envs())
            except Exception as exc:  # noqa: BLE001 - the assertion below names it
                failures.append(exc)

    real_batch = replay_module._replay_batch
    delivered = threading.Event()

    def slow_batch(*args, **kwargs):  # a delivery arrives while the rebuild runs
        if not delivered.is_set():
            late = env_event("Update", 9000, name="env-07", event_id="during", lock_by="ops")
            ingest(session_factory, late["headers"], raw(late))
            delivered.set()
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(replay_module, "REBUILD_LANES", 1)  # the walk in this process, where the delivery is made
    monkeypatch.setattr(replay_module, "_replay_batch", slow_batch)
    reader = threading.Thread(target=poll)
    reader.start()
    try:
        with reporting("rebuild") as reporter:
            replay(session_factory, Selection(), reporter, rebuild=True, batch_size=5)
    finally:
        stop.set()
        reader.join()
    after = envs()
    assert ("env-07", "ops") in after and len(after) == 60
    with_delivery = [(name, "ops" if name == "env-07" else lock) for name, lock in before]
    assert seen and all(state in (before, with_delivery) for state in seen), "a reader saw a partial inventory"
    assert not failures, f"a reader failed during the rebuild: {failures[0]!r}"
    with engine.connect() as conn:
        schemas = conn.exec_driver_sql(
            "SELECT count(*) FROM information_schema.schemata "
            "WHERE schema_name IN ('cmdb_sync_rebuild', 'cmdb_sync_replaced')"
        ).scalar()
    database.dispose()
    assert schemas == 0


def lane_world() -> list[dict[str, Any]]:
    """Envs of twenty apps updated in turn, and change orders whose sn is named under two apps
    (an sn is the org's: its events are dealt to two lanes)."""
    from tests.helpers import change_order_event

    events = []
    for step in range(30):
        for a in range(20):
            labels = {"step": str(step)}
            events.append(
                env_event("Update", 1000 + step * 100 + a, name=f"env-{a % 3}", app=f"app-{a}", labels=labels)
            )
    for step in range(40):
        co = change_order_event(f"co-{step % 4}", 1000 + step * 75, env="env-0", image=f"r/app:{step}")
        app = f"app-{step % 2}"
        co["headers"]["X-AppStack-App"] = app
        co["body"]["objectAttributes"]["appName"] = app
        events.append(co)
    return events


@pytest.mark.postgres_only
def test_a_rebuild_in_lanes_stops_when_a_lane_is_killed_and_continues_after(databases) -> None:
    """The walk runs in one process per lane: a lane killed mid-walk (the OOM killer, say) stops
    the rebuild with a message; run again, every lane continues from where it stood, and the
    result is what was served, every event applied once."""
    import os
    import signal
    import sys
    import time

    from cmdb_sync.db import Database
    from cmdb_sync.models import RebuildRun
    from tests.helpers import dump_state, lanes_of, stopped

    url = databases.fresh("postgresql")
    migrate.upgrade(url)
    database = Database.open(url)
    events = lane_world()
    for event in sorted(events, key=lambda e: (e["body"]["time"], e["body"]["id"])):
        ingest(database.sessions, event["headers"], raw(event))
    served = dump_state(database.engine)

    command = [sys.executable, "-m", "cmdb_sync", "replay", "--rebuild", "--batch-size", "3"]
    env = {**os.environ, "CMDB_SYNC_DATABASE_URL": url}
    holder = database.engine.connect()

    def kill_a_lane_mid_walk(rebuild) -> None:  # noqa: ANN001
        deadline = time.monotonic() + 60
        done = 0
        while done < 60 and time.monotonic() < deadline and rebuild.poll() is None:
            time.sleep(0.002)
            with database.engine.connect() as conn:
                done = conn.execute(select(func.coalesce(func.max(RebuildRun.done), 0))).scalar_one()
        # each lane records its batch's position in rebuild_runs: with it locked, both lanes wait mid-walk
        holder.exec_driver_sql("LOCK TABLE rebuild_runs IN EXCLUSIVE MODE")
        wait_for_lock_waiters(database.engine, 2)
        lanes = lanes_of(rebuild.pid)
        assert len(lanes) == 2, [child.cmdline() for child in lanes]
        lanes[0].send_signal(signal.SIGKILL)

    returncode, err = stopped(command, env, holder, kill_a_lane_mid_walk)
    assert returncode != 0
    assert "rebuild lane" in err and "stopped (exit code -9)" in err and "again to continue" in err, err
    with database.engine.connect() as conn:
        (stopped_at,) = conn.execute(select(RebuildRun.done).where(RebuildRun.finished_at.is_(None))).scalars().all()
    assert 0 < stopped_at < len(events), "the lane was not killed mid-walk"

    resumed = cli(url, "replay", "--rebuild", "--batch-size", "7")
    assert resumed.exit_code == 0, resumed.output
    assert f"{stopped_at} events were replayed" in resumed.output
    assert f"{len(events) - stopped_at} processed (applied: {len(events) - stopped_at})" in resumed.output
    assert dump_state(database.engine) == served
    with database.engine.connect() as conn:
        assert conn.execute(select(RebuildRun.done, RebuildRun.finished_at.is_not(None))).all() == [(len(events), True)]
        statuses = conn.execute(select(Event.status, func.count()).group_by(Event.status)).all()
    database.dispose()
    assert statuses == [("applied", len(events))]


@pytest.mark.postgres_only
def test_a_lane_that_cannot_reach_the_database_stops_the_rebuild_with_its_reason() -> None:
    import io

    from cmdb_sync.db import FillingStatistics, make_engine
    from cmdb_sync.models import RebuildRun
    from cmdb_sync.progress import reporting
    from cmdb_sync.replay import RebuildStopped, _LanePosition, _walk_in_lanes

    run = RebuildRun(id=1, started_at=datetime(2026, 1, 1, tzinfo=UTC), done=0)
    nowhere = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"
    lanes = [_LanePosition(None, None, None)] * 2
    with reporting("rebuild", stream=io.StringIO()) as reporter, pytest.raises(RebuildStopped) as stopped:
        _walk_in_lanes(nowhere, run, lanes, 10, reporter, FillingStatistics(make_engine(nowhere), ["apps"]))
    assert "rebuild lane" in str(stopped.value) and "failed" in str(stopped.value)
    assert "127.0.0.1" in str(stopped.value) or "refused" in str(stopped.value), str(stopped.value)


def wait_for_lock_waiters(engine, count: int) -> None:
    """Until ``count`` sessions of the database wait on a lock."""
    import time

    deadline = time.monotonic() + 60
    waiting = 0
    while waiting < count and time.monotonic() < deadline:
        time.sleep(0.01)
        with engine.connect() as conn:
            waiting = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).scalar_one()
    assert waiting >= count, f"{waiting} sessions wait on a lock, not {count}"


def import_world() -> list[dict[str, Any]]:
    """The lane world shuffled (so some arrive stale), with an id sent twice (the second copy under
    another app and body: a conflict) and an exact duplicate."""
    import random

    events = lane_world()
    random.Random(11).shuffle(events)
    twin = json.loads(json.dumps(events[5]))
    twin["headers"]["X-AppStack-App"] = "app-elsewhere"  # another object: dealt to its lane but for the id
    twin["body"]["objectAttributes"].update(appName="app-elsewhere", labelList=[])
    events.insert(9, twin)
    events.insert(300, json.loads(json.dumps(events[200])))
    return events


@pytest.mark.postgres_only
def test_an_import_in_lanes_answers_and_ends_as_one_process_does(databases, monkeypatch, tmp_path) -> None:
    from cmdb_sync import archive
    from tests.helpers import dump_state

    lines = [json.dumps({"headers": e["headers"], "body": e["body"]}) for e in import_world()]
    (tmp_path / "world.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    outcomes = []
    for lanes in (1, 2):
        monkeypatch.setattr(archive, "IMPORT_LANES", lanes)
        monkeypatch.setattr(archive, "IMPORT_BATCH", 32)  # many batches: the lanes interleave
        url = databases.fresh("postgresql")
        migrate.upgrade(url)
        imported = cli(url, "import", str(tmp_path / "world.jsonl"))
        assert imported.exit_code == 0, imported.output
        from cmdb_sync.db import Database

        with Database.open(url) as database:
            with database.engine.connect() as conn:
                statuses = dict(conn.execute(select(Event.id, Event.status)).all())
            outcomes.append((imported.output.strip().splitlines()[-1], statuses, dump_state(database.engine)))
    (one_summary, one_statuses, one_state), (lanes_summary, lanes_statuses, lanes_state) = outcomes
    assert "stale" in one_summary and "duplicate" in one_summary
    assert lanes_summary == one_summary
    assert lanes_statuses == one_statuses
    assert lanes_state == one_state


@pytest.mark.postgres_only
def test_an_import_writes_a_snapshot_after_all_when_the_newer_one_later_in_the_file_fails(
    databases, monkeypatch, tmp_path
) -> None:
    """An import in lanes leaves a snapshot unwritten when the file holds a newer one of its object
    further on (``Deferral``). When that newer one fails, what one-by-one processing would show
    is written after all: statuses and state are those of one
    process, which writes every snapshot."""
    from cmdb_sync import archive
    from cmdb_sync.db import Database
    from tests.helpers import dump_state

    failing = env_event("Update", 9000, name="prod", labels={"step": "9"})
    failing["body"]["objectAttributes"]["labelList"] = "not a list"  # refused when projected: failed
    events = [
        env_event("Update", 1000, name="prod", labels={"step": "1"}),
        env_event("Update", 2000, name="prod", labels={"step": "2"}),  # applied, left to the failing one
        failing,
        env_event("Update", 8000, name="staging", labels={"step": "8"}),  # the newest comes first...
        env_event("Update", 7000, name="staging", labels={"step": "7"}),  # ...so this one is stale
        env_event("Update", 1000, name="dev", labels={"step": "1"}),
        env_event("Update", 5000, name="dev", labels={"step": "5"}),  # written when its turn comes
    ]
    path = tmp_path / "world.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n", encoding="utf-8")
    outcomes = []
    for lanes in (1, 2):
        monkeypatch.setattr(archive, "IMPORT_LANES", lanes)
        monkeypatch.setattr(archive, "IMPORT_BATCH", 1)  # each event its own batch: the newer one comes later
        url = databases.fresh("postgresql")
        migrate.upgrade(url)
        with Database.open(url) as database:
            imported = cli(url, "import", str(path))
            assert imported.exit_code == 0, imported.output
            with database.engine.connect() as conn:
                statuses = dict(conn.execute(select(Event.id, Event.status)).all())
                version_ids = dict(conn.execute(select(Env.name, Env.version_id)).all())
            outcomes.append((statuses, dump_state(database.engine), version_ids))
    (one_statuses, one_state, _), (lanes_statuses, lanes_state, versions) = outcomes
    ids = [e["body"]["id"] for e in events]
    assert [lanes_statuses[i] for i in ids] == [
        "applied", "applied", "failed", "applied", "stale", "applied", "applied"
    ]  # fmt: skip
    assert versions == {"prod": ids[1], "staging": ids[3], "dev": ids[6]}
    assert lanes_statuses == one_statuses
    assert lanes_state == one_state


def half_imported_lane_world(databases, tmp_path):  # noqa: ANN001, ANN201
    """The lane world in a file; the state a whole import of it builds; a database holding its first
    300 lines, and a connection that locks ``versions`` there, so that the lanes of an import of
    the rest wait mid-batch: ``(path, expected, url, database, holder)``."""
    from cmdb_sync.db import Database
    from tests.helpers import dump_state

    events = lane_world()
    path = tmp_path / "world.jsonl"
    path.write_text(
        "\n".join(json.dumps({"headers": e["headers"], "body": e["body"]}) for e in events), encoding="utf-8"
    )
    expected_url = databases.fresh("postgresql")
    migrate.upgrade(expected_url)
    assert cli(expected_url, "import", str(path)).exit_code == 0
    with Database.open(expected_url) as database:
        expected = dump_state(database.engine)

    url = databases.fresh("postgresql")
    migrate.upgrade(url)
    database = Database.open(url)
    first = tmp_path / "first.jsonl"
    first.write_text("\n".join(path.read_text(encoding="utf-8").splitlines()[:300]), encoding="utf-8")
    assert cli(url, "import", str(first)).exit_code == 0
    holder = database.engine.connect()
    holder.exec_driver_sql("LOCK TABLE versions IN EXCLUSIVE MODE")  # the lanes' batches wait on it
    return path, expected, url, database, holder


@pytest.mark.postgres_only
def test_an_import_whose_lane_is_killed_stops_with_a_message_and_finishes_when_run_again(databases, tmp_path) -> None:
    import os
    import signal
    import threading

    from tests.helpers import dump_state, lanes_of

    path, expected, url, database, holder = half_imported_lane_world(databases, tmp_path)

    def kill_a_lane() -> None:
        wait_for_lock_waiters(database.engine, 2)
        lanes_of(os.getpid())[0].send_signal(signal.SIGKILL)

    killer = threading.Thread(target=kill_a_lane)
    killer.start()
    try:
        stopped = cli(url, "import", str(path))
    finally:
        killer.join()
        holder.rollback()
        holder.close()
    assert stopped.exit_code == 1, (stopped.output, stopped.exception)
    assert "import lane" in stopped.output and "stopped (exit code -9)" in stopped.output, stopped.output
    assert "import the same files again to finish" in stopped.output
    with database.engine.connect() as conn:
        journaled = conn.execute(select(func.count()).select_from(Event)).scalar_one()
    assert journaled == 300  # the first file; nothing of the second was committed

    again = cli(url, "import", str(path))
    assert again.exit_code == 0, again.output
    assert f"duplicate: {journaled}" in again.output
    assert dump_state(database.engine) == expected
    database.dispose()


@pytest.mark.postgres_only
def test_an_import_stopped_by_sigterm_says_what_it_did_and_finishes_when_run_again(databases, tmp_path) -> None:
    """``kill``, systemd or a container's stop sends SIGTERM: the import stops its lanes, says what
    it imported and how to go on, and exits 143, instead of dying silently while its lanes print
    tracebacks. Each batch is whole, so the same import run again finishes the job."""
    import os
    import signal
    import sys
    import time

    from tests.helpers import dump_state, lanes_of, stopped

    path, expected, url, database, holder = half_imported_lane_world(databases, tmp_path)
    command = [sys.executable, "-m", "cmdb_sync", "import", str(path)]
    env = {**os.environ, "CMDB_SYNC_DATABASE_URL": url}
    lanes = []

    def terminate_while_lanes_wait(importing) -> None:  # noqa: ANN001
        wait_for_lock_waiters(database.engine, 2)
        lanes.extend(lanes_of(importing.pid))
        assert len(lanes) == 2
        importing.send_signal(signal.SIGTERM)

    returncode, err = stopped(command, env, holder, terminate_while_lanes_wait)
    assert returncode == 128 + signal.SIGTERM, err
    assert "imported before it stopped: " in err, err
    assert "stopped by SIGTERM: what was written is committed; import the same files again to finish" in err
    assert "Traceback" not in err, err
    assert not any(lane.is_running() for lane in lanes)
    deadline = time.monotonic() + 30  # a lane's batch whose commit was sent before it stopped is written now
    with database.engine.connect() as conn:
        while (
            time.monotonic() < deadline
            and conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND state <> 'idle'"
            ).scalar_one()
        ):
            conn.rollback()
            time.sleep(0.05)
        journaled = conn.execute(select(func.count()).select_from(Event)).scalar_one()

    again = cli(url, "import", str(path))
    assert again.exit_code == 0, again.output
    assert f"duplicate: {journaled}" in again.output
    assert dump_state(database.engine) == expected
    database.dispose()


@pytest.mark.postgres_only
def test_a_failed_delivery_sent_again_with_a_fix_during_a_rebuild_is_in_the_rebuilt_state(
    databases, monkeypatch
) -> None:
    """The walk replays the failed delivery (it fails again); the fix arrives before the catch-up,
    with the same id and arrival time: the catch-up replays it (a delivery without a version is
    never taken as replayed), so the swapped-in state has it, as the live one does."""
    import copy
    import io

    from cmdb_sync import replay as replay_module
    from cmdb_sync.db import Database
    from cmdb_sync.progress import reporting
    from cmdb_sync.replay import Selection, replay

    url = databases.fresh("postgresql")
    migrate.upgrade(url)
    database = Database.open(url)
    fixed = env_event("Create", 1000, name="fixed-env")
    broken = copy.deepcopy(fixed)
    del broken["body"]["objectAttributes"]["name"]
    assert ingest(database.sessions, broken["headers"], raw(broken)).status == "failed"
    real_catch_up = replay_module._catch_up

    def fix_arrives_first(*args, **kwargs):
        assert ingest(database.sessions, fixed["headers"], raw(fixed)).status == "applied"
        return real_catch_up(*args, **kwargs)

    monkeypatch.setattr(replay_module, "_catch_up", fix_arrives_first)
    with reporting("rebuild", stream=io.StringIO()) as reporter:
        replay(database.sessions, Selection(), reporter, rebuild=True)
    assert dict(reporter.tally.counts) == {"failed": 1}  # what the walk saw
    with database.sessions() as session:
        assert session.scalars(select(Env.name)).all() == ["fixed-env"]
        assert session.get(Event, fixed["body"]["id"]).status == "applied"
    database.dispose()


@pytest.mark.postgres_only
def test_a_bulk_write_refreshes_the_statistics_of_the_tables_it_fills_at_each_step(databases) -> None:
    from sqlalchemy import text

    from cmdb_sync.db import FillingStatistics, make_engine

    url = databases.fresh("postgresql")
    migrate.upgrade(url)
    engine = make_engine(url, pool_size=1)

    def tuples() -> float:
        with engine.connect() as conn:
            return conn.scalar(text("SELECT reltuples FROM pg_class WHERE relname = 'apps'"))

    def add(count: int, start: int) -> None:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO apps (org_id, name) SELECT 'org', 'app' || n FROM generate_series(CAST(:a AS int), CAST(:b AS int)) n"
                ),
                {"a": start, "b": start + count - 1},
            )

    statistics = FillingStatistics(engine, ["apps"], at=(10, 100))
    add(5, 0)
    statistics.written(9)
    assert tuples() == -1  # never analyzed
    statistics.written(10)
    assert tuples() == 5
    add(50, 5)
    statistics.written(99)  # the first step is taken already, the next not reached
    assert tuples() == 5
    add(50, 55)
    statistics.written(500)  # past the last step: analyzed once more, then never
    assert tuples() == 105
    add(10, 105)
    statistics.written(1_000)
    assert tuples() == 105
    engine.dispose()


@pytest.mark.postgres_only
def test_statistics_that_cannot_be_refreshed_at_once_are_skipped_not_waited_for(databases, caplog) -> None:
    """Only for speed: a table another session is analyzing (its lock held) costs a second and a
    warning, not the bulk write."""
    import threading

    from sqlalchemy import text

    from cmdb_sync.db import STATISTICS_LOCK_WAIT, FillingStatistics, make_engine

    url = databases.fresh("postgresql")
    migrate.upgrade(url)
    engine = make_engine(url, pool_size=2)
    statistics = FillingStatistics(engine, ["apps"], at=(1,))
    with engine.connect() as holder:
        holder.exec_driver_sql("LOCK TABLE apps IN SHARE UPDATE EXCLUSIVE MODE")  # as ANALYZE takes it
        refresher = threading.Thread(target=statistics.written, args=(1,))
        refresher.start()
        refresher.join(timeout=15)
        gave_up = not refresher.is_alive()  # it would wait for the lock as long as it is held
        holder.rollback()
        refresher.join()
    with engine.connect() as conn:
        tuples = conn.scalar(text("SELECT reltuples FROM pg_class WHERE relname = 'apps'"))
    engine.dispose()
    assert STATISTICS_LOCK_WAIT == "1s" and gave_up
    assert tuples == -1  # not analyzed
    assert "statistics of apps not refreshed at 1 rows" in caplog.text
    assert "lock timeout" in caplog.text


@pytest.mark.postgres_only
def test_analyze_after_a_bulk_load_covers_every_table_or_the_ones_named(databases) -> None:
    from sqlalchemy import text

    from cmdb_sync.db import Database

    url = databases.fresh("postgresql")
    migrate.upgrade(url)
    analyzed = "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') AND reltuples >= 0"
    with Database.open(url, pool_size=2) as database:
        event = env_event("Update", 1000)
        ingest(database.sessions, event["headers"], raw(event))
        database.analyze(["envs", "env_labels"])
        with database.engine.connect() as conn:
            assert set(conn.execute(text(analyzed)).scalars()) == {"envs", "env_labels"}
        database.analyze()
        with database.engine.connect() as conn:
            names = set(conn.execute(text(analyzed)).scalars())
            tables = set(
                conn.execute(
                    text(
                        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')"
                    )
                ).scalars()
            )
    assert "events" in names and "apps" in names
    assert names == tables  # partitions included: ANALYZE of the journal reaches each month's


def test_import_refuses_a_line_that_is_not_utf8_and_imports_the_rest(engine, migrated_url, seed, tmp_path) -> None:
    """A corrupt byte in an archive costs its line, not the import (it was a traceback)."""
    deliveries = [seed["03_Env_Create"], seed["04_Env_Update"]]
    good = [json.dumps({"headers": d["headers"], "body": d["body"]}, ensure_ascii=False).encode() for d in deliveries]
    archive = tmp_path / "archive.jsonl"
    archive.write_bytes(good[0] + b"\n" + b'{"headers": {}, "body": {"id": "x\xff"}}\n' + good[1] + b"\n")
    result = cli(migrated_url, "import", str(archive))
    assert result.exit_code == 2, result.output
    assert "line 2: skipped: not valid UTF-8 text (byte 0xff at character 34)" in result.output
    assert "3 processed (applied: 2, invalid: 1)" in result.output
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Event)) == 2
