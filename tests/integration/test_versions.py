"""History, the change feed and as-of reads (the contract's "History, the change feed, and as-of
reads"), on SQLite and PostgreSQL.

The as-of property: for a generated world delivered in random order, with duplicates, the answer
of every inventory route at ``as_of=T`` equals what a fresh database that received only the events
with ``time <= T`` answers now.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from cmdb_sync.app import create_app
from cmdb_sync.ingest import ingest
from tests.conftest import _empty_all_tables, make_settings
from tests.helpers import (
    APP,
    ORG,
    app_event,
    change_order_event,
    env_event,
    orchestration_event,
    queries_sent,
    raw,
    variable_group_event,
)

ADMIN = "admin-token"
READER = "reader-token"
TIMES = st.sampled_from([1000, 2000, 3000, 4000])


@pytest.fixture
def api(engine, migrated_url):
    app = create_app(make_settings(migrated_url, api_tokens=[READER], api_admin_tokens=[ADMIN]))
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN}"
        yield client


def deliver(session_factory, *events) -> None:
    for event in events:
        ingest(session_factory, event["headers"], raw(event))


@st.composite
def worlds(draw):
    """Events of two apps: app versions and deletes, envs with labels, groups, orchestrations and
    change orders, at few distinct times so that ties (same millisecond, different ids) are common."""
    makers = [
        lambda t, i: app_event("Create", t, event_id=i, description="c"),
        lambda t, i: app_event("Update", t, event_id=i, description="u"),
        lambda t, i: app_event("Delete", t, event_id=i),
        lambda t, i: app_event("Create", t, event_id=i, name="other", description="o"),
        lambda t, i: env_event("Create", t, event_id=i, labels={"tier": "a"}),
        lambda t, i: env_event("Update", t, event_id=i, labels={"tier": "b", "zone": "z"}, lock_by="x"),
        lambda t, i: env_event("Delete", t, event_id=i),
        lambda t, i: env_event("Create", t, event_id=i, name="staging", labels={"tier": "b"}),
        lambda t, i: env_event("Create", t, event_id=i, app="other", labels={"tier": "b", "zone": "z"}),
        lambda t, i: variable_group_event("Update", t, event_id=i, values={"k": "v"}),
        lambda t, i: variable_group_event("Update", t, event_id=i, values={"k": "w", "j": "x"}),
        lambda t, i: variable_group_event("Delete", t, event_id=i),
        lambda t, i: orchestration_event("Update", t, event_id=i, message="m"),
        lambda t, i: orchestration_event("Delete", t, event_id=i),
        lambda t, i: change_order_event("co", t, event_id=i, state="RUNNING"),
        lambda t, i: change_order_event("co", t, event_id=i, state="SUCCESS", image="r/app:2"),
        lambda t, i: ended_later(change_order_event("co2", t, event_id=i, state="SUCCESS", image="r/app:3")),
    ]
    chosen = draw(st.lists(st.sampled_from(range(len(makers))), min_size=1, max_size=10))
    return [makers[m](draw(TIMES), f"e{n:02d}") for n, m in enumerate(chosen)]


def ended_later(event: dict) -> dict:
    """Jobs that ended at the same millisecond are ordered by arrival, which as-of cannot know:
    the worlds keep their end times apart."""
    for job in event["body"]["objectAttributes"]["jobs"]:
        job["endedAt"] = 2000
    return event


READS = [
    "/api/v1/apps",
    "/api/v1/apps?include_deleted=true",
    "/api/v1/apps?q=sho&limit=1",
    f"/api/v1/apps/{APP}",
    f"/api/v1/apps/{APP}?include_deleted=true",
    f"/api/v1/apps/{APP}/envs?org_id={ORG}",
    f"/api/v1/apps/{APP}/envs?org_id={ORG}&include_deleted=true&limit=1",
    f"/api/v1/apps/{APP}/envs/prod?org_id={ORG}",
    f"/api/v1/apps/{APP}/envs/prod?org_id={ORG}&include_deleted=true",
    "/api/v1/envs",
    "/api/v1/envs?include_deleted=true&limit=2",
    "/api/v1/envs?label=tier=b&label=zone=z",
    "/api/v1/envs?artifact=r/app:2",
    f"/api/v1/apps/{APP}/variable-groups?org_id={ORG}&include_deleted=true&reveal=true",
    f"/api/v1/apps/{APP}/variable-groups/vars?org_id={ORG}",
    f"/api/v1/apps/{APP}/orchestrations?org_id={ORG}&include_deleted=true",
    f"/api/v1/apps/{APP}/orchestrations/{APP}@KUBERNETES?org_id={ORG}",
    f"/api/v1/apps/{APP}/change-orders?org_id={ORG}",
    f"/api/v1/apps/{APP}/change-orders?org_id={ORG}&state=SUCCESS&env=prod&limit=1",
    f"/api/v1/change-orders/co?org_id={ORG}",
]


def answers(api, *, as_of: int | None = None) -> list[tuple[str, int, object]]:
    found = []
    for path in READS:
        url = path if as_of is None else f"{path}{'&' if '?' in path else '?'}as_of={as_of}"
        response = api.get(url)
        # an error's wording may differ ("did not exist at T"); its status may not
        found.append((path, response.status_code, response.json() if response.status_code == 200 else None))
    return found


def follow(api, path: str) -> list[object]:
    """Every item of a list, page after page."""
    items, cursor = [], None
    while True:
        page = api.get(path + (f"&cursor={cursor}" if cursor else "")).json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_as_of_answers_what_a_database_with_only_the_events_until_then_answers(
    api, engine, session_factory, data
) -> None:
    events = data.draw(worlds())
    delivered = data.draw(st.permutations(events + data.draw(st.lists(st.sampled_from(events), max_size=3))))
    moment = data.draw(st.sampled_from([500, 1000, 1500, 2000, 3000, 4000]))

    _empty_all_tables(engine)
    deliver(session_factory, *delivered)
    at_the_moment = answers(api, as_of=moment)

    _empty_all_tables(engine)
    deliver(session_factory, *(e for e in delivered if e["body"]["time"] <= moment))
    assert at_the_moment == answers(api)


def test_as_of_an_app_deleted_then_created_again_hides_what_was_older_than_the_delete(api, session_factory) -> None:
    deliver(
        session_factory,
        env_event("Create", 1000, event_id="e1"),
        env_event("Create", 1000, name="staging", event_id="s1"),
        app_event("Delete", 2000, event_id="ad"),
        app_event("Create", 3000, event_id="ac"),
        env_event("Update", 4000, name="staging", event_id="s4"),
    )
    assert [e["name"] for e in api.get(f"/api/v1/apps/{APP}/envs?as_of=1500").json()["items"]] == ["prod", "staging"]
    assert api.get(f"/api/v1/apps/{APP}/envs?as_of=3500").json()["items"] == []
    hidden = api.get(f"/api/v1/apps/{APP}/envs/prod?as_of=3500&include_deleted=true").json()
    assert hidden["deleted_at"] == "1970-01-01T00:00:02.000Z"
    assert [e["name"] for e in api.get(f"/api/v1/apps/{APP}/envs?as_of=4000").json()["items"]] == ["staging"]


def test_as_of_pages_follow_the_same_order_as_the_current_lists(api, engine, session_factory) -> None:
    deliver(
        session_factory,
        *(env_event("Create", 1000 + n, name=f"env-{n:02d}", event_id=f"c{n}") for n in range(12)),
        env_event("Delete", 5000, name="env-03", event_id="d3"),
    )
    current = follow(api, "/api/v1/envs?limit=5")
    assert [e["name"] for e in current] == [f"env-{n:02d}" for n in range(12) if n != 3]
    assert follow(api, "/api/v1/envs?limit=5&as_of=9000") == current
    earlier = follow(api, "/api/v1/envs?limit=5&as_of=1005")
    assert [e["name"] for e in earlier] == [f"env-{n:02d}" for n in range(6)]


def test_the_as_of_app_list_walks_the_apps_of_the_moment_past_what_its_filter_skips(api, session_factory) -> None:
    # apps made by their own events and implied by an env's; a few created after the moment; the
    # name filter keeps one in three, so a page of 2 needs several chunks of candidates
    deliver(
        session_factory,
        *(app_event("Create", 1000 + n, name=f"app-{n:02d}", event_id=f"a{n}") for n in range(0, 30, 2)),
        *(env_event("Create", 1000 + n, app=f"app-{n:02d}", event_id=f"e{n}") for n in range(1, 30, 2)),
        *(app_event("Create", 8000 + n, name=f"late-{n}", event_id=f"l{n}") for n in range(3)),
    )
    assert len(follow(api, "/api/v1/apps?limit=2&as_of=5000")) == 30
    current = [a["name"] for a in follow(api, "/api/v1/apps?limit=2&q=app-0")]
    assert current == [f"app-{n:02d}" for n in range(10)]
    assert [a["name"] for a in follow(api, "/api/v1/apps?limit=2&q=app-0&as_of=9000")] == current
    early = [a["name"] for a in follow(api, "/api/v1/apps?limit=2&q=p-&as_of=1012")]
    assert early == [f"app-{n:02d}" for n in range(13)]
    assert api.get("/api/v1/apps/late-1?as_of=5000").status_code == 404
    assert api.get("/api/v1/apps/late-1?as_of=8001").json()["name"] == "late-1"


def test_as_of_that_does_not_parse_or_lies_ahead_is_a_400_naming_it(api) -> None:
    for value in ("yesterday", "2024-13-01T00:00:00Z", "9999-01-01T00:00:00+00:00"):
        response = api.get(f"/api/v1/apps?as_of={value}")
        assert response.status_code == 400, value
        assert response.json()["field"] == "as_of"


def test_an_object_that_did_not_exist_then_is_a_404_that_says_so(api, session_factory) -> None:
    deliver(session_factory, app_event("Create", 2000, event_id="a"), env_event("Create", 3000, event_id="e"))
    assert api.get(f"/api/v1/apps/{APP}?as_of=1000").status_code == 404
    response = api.get(f"/api/v1/apps/{APP}/envs/prod?as_of=2500")
    assert response.status_code == 404
    assert "did not exist at" in response.json()["detail"]
    assert api.get(f"/api/v1/apps/{APP}/envs/prod?as_of=3000").json()["name"] == "prod"


def test_env_history_is_newest_first_with_what_changed(api, session_factory) -> None:
    deliver(
        session_factory,
        env_event("Create", 1000, event_id="e1", labels={"tier": "a"}),
        env_event("Update", 3000, event_id="e3", labels={"tier": "b", "zone": "z"}, lock_by="ops"),
        env_event("Update", 2000, event_id="e2", labels={"tier": "a"}, lock_by="dev"),  # late: stale, still history
    )
    page = api.get(f"/api/v1/apps/{APP}/envs/prod/history").json()
    assert [v["event_id"] for v in page["items"]] == ["e3", "e2", "e1"]
    newest = page["items"][0]
    assert newest["action"] == "Update" and newest["deleted"] is False and newest["actor_id"]
    assert {"field": "lock_by", "from": "dev", "to": "ops"} in newest["changes"]
    (labels,) = [c for c in newest["changes"] if c["field"] == "labels"]
    assert [label["value"] for label in labels["added"]] == ["b", "z"]
    assert [label["value"] for label in labels["removed"]] == ["a"]
    first = api.get(f"/api/v1/apps/{APP}/envs/prod/history?limit=2").json()
    rest = api.get(f"/api/v1/apps/{APP}/envs/prod/history?limit=2&cursor={first['next_cursor']}").json()
    assert [v["event_id"] for v in first["items"] + rest["items"]] == ["e3", "e2", "e1"]
    assert rest["next_cursor"] is None


def test_variable_group_history_masks_values_unless_an_admin_reveals_them(api, session_factory) -> None:
    deliver(
        session_factory,
        variable_group_event("Create", 1000, event_id="v1", values={"password": "one"}),
        variable_group_event("Update", 2000, event_id="v2", values={"password": "two"}),
    )
    path = f"/api/v1/apps/{APP}/variable-groups/vars/history"
    masked = api.get(path, headers={"Authorization": f"Bearer {READER}"}).json()["items"][0]["changes"]
    (variables,) = [c for c in masked if c["field"] == "vars"]
    assert variables["changed"][0]["key"] == "password"
    assert variables["changed"][0]["to"] == {
        "key": "password",
        "value": None,
        "description": "password var",
        "masked": True,
    }
    revealed = api.get(path + "?reveal=true").json()["items"][0]["changes"]
    (variables,) = [c for c in revealed if c["field"] == "vars"]
    assert (variables["changed"][0]["from"]["value"], variables["changed"][0]["to"]["value"]) == ("one", "two")
    assert api.get(path + "?reveal=true", headers={"Authorization": f"Bearer {READER}"}).status_code == 403


def test_an_app_delete_hides_older_versions_of_its_objects(api, session_factory) -> None:
    deliver(
        session_factory,
        env_event("Create", 1000, event_id="e1"),
        app_event("Delete", 2000, event_id="ad"),
        env_event("Update", 3000, event_id="e3", lock_by="x"),
    )
    path = f"/api/v1/apps/{APP}/envs/prod/history"
    assert [v["event_id"] for v in api.get(path).json()["items"]] == ["e3"]
    assert [v["event_id"] for v in api.get(path + "?include_deleted=true").json()["items"]] == ["e3", "e1"]
    assert [v["event_id"] for v in api.get(f"/api/v1/apps/{APP}/history").json()["items"]] == ["ad"]


def test_history_of_what_never_existed_is_a_404(api, session_factory) -> None:
    deliver(session_factory, app_event("Create", 1000, event_id="a"))
    assert api.get(f"/api/v1/apps/{APP}/envs/nope/history").status_code == 404
    assert api.get(f"/api/v1/apps/{APP}/orchestrations/nope/history").status_code == 404
    assert api.get("/api/v1/apps/nope/history").status_code == 404


def test_an_empty_history_page_is_a_404_only_for_what_never_existed(api, session_factory) -> None:
    """The first page says whether the object has history when it has rows; an empty one (every
    version hidden by an App Delete) or a page past a cursor asks: 200 empty, or 404."""
    deliver(
        session_factory,
        env_event("Create", 1000, event_id="e1"),
        env_event("Update", 1500, event_id="e2", lock_by="x"),
        app_event("Delete", 2000, event_id="ad"),
    )
    hidden = api.get(f"/api/v1/apps/{APP}/envs/prod/history")
    assert (hidden.status_code, hidden.json()["items"]) == (200, [])
    first = api.get(f"/api/v1/apps/{APP}/envs/prod/history?include_deleted=true&limit=1").json()
    cursor = first["next_cursor"]
    assert [v["event_id"] for v in first["items"]] == ["e2"] and cursor
    past = api.get(f"/api/v1/apps/{APP}/envs/prod/history?include_deleted=true&limit=1&cursor={cursor}")
    assert [v["event_id"] for v in past.json()["items"]] == ["e1"]
    never = api.get(f"/api/v1/apps/{APP}/envs/nope/history?cursor={cursor}")
    assert never.status_code == 404 and "env 'nope' of app" in never.json()["detail"]
    assert api.get(f"/api/v1/apps/{APP}/envs/prod/history?cursor=not-a-cursor").status_code == 400


def statements_of(api, path: str) -> tuple[int, dict]:
    """How many queries answering ``path`` sent to the database, and the answer."""
    with queries_sent() as sent:
        response = api.get(path)
    assert response.status_code == 200, response.text
    return len(sent), response.json()


def test_a_history_page_reads_its_versions_their_events_and_the_archive_mark_in_one_statement(
    api, session_factory
) -> None:
    deliver(session_factory, *(env_event("Update", 1000 * n, event_id=f"e{n}", lock_by=f"u{n}") for n in range(1, 8)))
    # the app, then the page: each version with its event and the one before it, when it is on the page
    count, page = statements_of(api, f"/api/v1/apps/{APP}/envs/prod/history")
    assert [v["event_id"] for v in page["items"]] == [f"e{n}" for n in range(7, 0, -1)]
    assert page["items"][0]["changes"] == [{"field": "lock_by", "from": "u6", "to": "u7"}]
    assert count == 2
    # a page that ends before the first version: the row past its end is the one before its last
    count, page = statements_of(api, f"/api/v1/apps/{APP}/envs/prod/history?limit=3")
    assert page["items"][-1]["changes"] == [{"field": "lock_by", "from": "u4", "to": "u5"}] and count == 2
    # past a cursor: whether the env ever existed is asked first
    count, page = statements_of(api, f"/api/v1/apps/{APP}/envs/prod/history?limit=3&cursor={page['next_cursor']}")
    assert [v["event_id"] for v in page["items"]] == ["e4", "e3", "e2"] and count == 3


def test_the_change_feed_is_in_event_time_order_and_its_cursor_survives_new_events(api, session_factory) -> None:
    deliver(
        session_factory,
        app_event("Create", 1000, event_id="a1"),
        env_event("Create", 3000, event_id="e3"),
        orchestration_event("Create", 2000, event_id="o2"),
        change_order_event("co", 2500, event_id="c"),  # not a version: change orders are history kinds
    )
    first = api.get("/api/v1/changes?limit=2").json()
    assert [(c["event_id"], c["kind"], c["name"]) for c in first["items"]] == [
        ("a1", "App", APP),
        ("o2", "AppOrchestration", f"{APP}@KUBERNETES"),
    ]
    deliver(session_factory, env_event("Update", 4000, event_id="e4"), env_event("Update", 500, event_id="e0"))
    rest = api.get(f"/api/v1/changes?limit=10&cursor={first['next_cursor']}").json()
    assert [c["event_id"] for c in rest["items"]] == ["e3", "e4"]
    assert [c["event_id"] for c in api.get("/api/v1/changes?kind=Env&since=1970-01-01T00:00:01Z").json()["items"]] == [
        "e3",
        "e4",
    ]
    assert api.get("/api/v1/changes?kind=ChangeOrder").status_code == 400


def test_rebuild_writes_the_versions_again(api, engine, migrated_url, session_factory) -> None:
    from click.testing import CliRunner

    from cmdb_sync.cli import main

    deliver(session_factory, env_event("Create", 1000, event_id="e1"), env_event("Update", 2000, event_id="e2"))
    before = api.get(f"/api/v1/apps/{APP}/envs/prod/history").json()
    result = CliRunner().invoke(main, ["replay", "--rebuild"], env={"CMDB_SYNC_DATABASE_URL": migrated_url})
    assert result.exit_code == 0, result.output
    assert api.get(f"/api/v1/apps/{APP}/envs/prod/history").json() == before


def test_db_upgrade_says_when_the_journal_predates_the_versions_and_a_rebuild_indexes_it(
    api, engine, migrated_url, session_factory
) -> None:
    from click.testing import CliRunner
    from sqlalchemy import delete, func, select

    from cmdb_sync.cli import main
    from cmdb_sync.models import Version

    deliver(session_factory, env_event("Create", 1000, event_id="e1"), env_event("Update", 2000, event_id="e2"))
    with engine.begin() as conn:  # as a journal received before migration 0005 stands
        conn.execute(delete(Version))
    env = {"CMDB_SYNC_DATABASE_URL": migrated_url}
    upgraded = CliRunner().invoke(main, ["db", "upgrade"], env=env)
    assert upgraded.exit_code == 0, upgraded.output
    assert "history: 2 journaled events predate the versions index" in upgraded.output
    assert CliRunner().invoke(main, ["replay", "--rebuild"], env=env).exit_code == 0
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Version)) == 2
    assert "history:" not in CliRunner().invoke(main, ["db", "upgrade"], env=env).output
    assert [v["event_id"] for v in api.get(f"/api/v1/apps/{APP}/envs/prod/history").json()["items"]] == ["e2", "e1"]
