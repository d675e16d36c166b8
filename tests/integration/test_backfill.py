"""Backfill from a fake AppStack OpenAPI: mapping, precedence of newer webhook state, deletions and
their threshold, backoff on 429/500, a clear stop on 401, and resuming an interrupted run."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient
from sqlalchemy import func, select

from cmdb_sync import cli as cli_module
from cmdb_sync.app import create_app
from cmdb_sync.appstack import AppStackClient, AppStackError
from cmdb_sync.backfill import Backfill, epoch_ms, parse_max_delete
from cmdb_sync.cli import main
from cmdb_sync.ingest import ingest, now_utc
from cmdb_sync.models import BackfillRun, Env, Event
from cmdb_sync.progress import reporting
from tests.conftest import make_settings
from tests.fake_appstack import TOKEN, FakeAppStack, sample
from tests.helpers import env_event, raw

ADMIN = "admin"


def run_backfill(session_factory, fake: FakeAppStack, *, app=None, max_delete=0.10, sleeps=None, token=TOKEN):
    with fake.client(token) as http, reporting("backfill", stream=io.StringIO()) as reporter:
        client = AppStackClient(
            http, org=fake.org, edition=fake.edition, sleep=(sleeps.append if sleeps is not None else lambda _: None)
        )
        report = Backfill(
            session_factory, client, org=fake.org, app=app, max_delete=max_delete, reporter=reporter
        ).run()
    return report, reporter.tally


@pytest.fixture
def api(engine, migrated_url):
    with TestClient(create_app(make_settings(migrated_url, api_admin_tokens=[ADMIN]))) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN}"
        yield client


def test_backfill_into_an_empty_database(api, session_factory) -> None:
    fake = sample()
    report, tally = run_backfill(session_factory, fake)
    assert (report.apps_seen, report.to_delete, report.deletions_withheld) == (2, 0, False)
    # 2 apps, 4 envs, 2 groups, 3 orchestrations
    assert tally.counts == {"applied": 11}
    apps = api.get("/api/v1/apps").json()["items"]
    assert [(a["name"], a["description"]) for a in apps] == [("shop", "the shop"), ("商城", None)]
    assert apps[1]["created_at"] == "2024-08-31T16:00:00.000Z"  # "2024-09-01 00:00:00" in the service's zone
    prod = api.get("/api/v1/apps/shop/envs/prod").json()
    assert prod["display_name"] == "prod 环境"
    assert prod["replicas_management"] == "USER"
    assert prod["rollout_strategy"] == [{"locator": "*", "deployType": "Rolling", "batchMode": "Auto"}]
    assert prod["profiles"] == [{"name": "shop-vars", "display_name": "Shop vars", "type": "APP"}]
    assert [label["value"] for label in prod["labels"]] == ["production"]
    assert [e["name"] for e in api.get("/api/v1/apps/shop/envs").json()["items"]] == ["dev", "prod", "staging"]
    assert api.get("/api/v1/apps/%E5%95%86%E5%9F%8E/envs/prod").json()["display_name"] == "生产"
    group = api.get("/api/v1/apps/shop/variable-groups/shop-vars?reveal=true").json()
    assert group["vars"] == [{"key": "K", "value": "V", "description": "d", "masked": False}]
    orchestrations = api.get("/api/v1/apps/shop/orchestrations").json()["items"]
    assert [o["sn"] for o in orchestrations] == ["shop@ECS", "shop@HOST", "shop@KUBERNETES"]
    assert orchestrations[0]["revision"]["commit_time"] == "2024-07-29T07:10:27.934Z"
    assert orchestrations[0]["placeholders"][0]["name"] == "image.backend"
    # keyset pages were followed, and each orchestration was fetched whole
    assert fake.hits["/oapi/v1/appstack/organizations/org-1/apps/shop/envs"] == 2
    assert fake.hits["/oapi/v1/appstack/organizations/org-1/apps/shop/orchestrations/shop@HOST"] == 1
    with session_factory() as session:
        sources = {e.headers.get("X-CmdbSync-Source") for e in session.scalars(select(Event))}
    assert sources == {"backfill"}


def test_region_edition_has_no_organization_segment(session_factory) -> None:
    fake = sample()
    fake.edition = "region"
    report, tally = run_backfill(session_factory, fake)
    assert tally.counts == {"applied": 11}
    assert all(not path.startswith("/oapi/v1/appstack/organizations") for path in fake.requests)


def test_newer_webhook_state_wins_over_the_backfill(api, session_factory) -> None:
    future = int((now_utc() + timedelta(days=1)).timestamp() * 1000)
    webhook = env_event("Update", future, name="prod", description="set by a webhook", labels={"envType": "production"})
    assert ingest(session_factory, webhook["headers"], raw(webhook)).status == "applied"
    report, tally = run_backfill(session_factory, sample())
    assert tally.counts == {"applied": 10, "stale": 1}
    assert api.get("/api/v1/apps/shop/envs/prod").json()["description"] == "set by a webhook"
    assert report.to_delete == 0


def old_webhook_envs(session_factory, names: list[str]) -> None:
    for name in names:
        event = env_event("Create", 1722236764000, name=name)
        ingest(session_factory, event["headers"], raw(event))


def test_objects_gone_from_the_source_are_deleted_under_the_threshold(api, session_factory) -> None:
    old_webhook_envs(session_factory, ["prod", "legacy"])
    report, tally = run_backfill(session_factory, sample())
    assert (report.to_delete, report.held, report.deletions_withheld) == (1, 11, False)
    assert tally.counts["applied"] == 12  # 11 snapshots and 1 delete
    assert [e["name"] for e in api.get("/api/v1/apps/shop/envs").json()["items"]] == ["dev", "prod", "staging"]
    legacy = api.get("/api/v1/apps/shop/envs/legacy?include_deleted=true").json()
    assert legacy["deleted_at"] is not None
    assert legacy["display_name"] == "legacy env"  # the tombstone keeps the last snapshot


def test_deletions_over_the_threshold_are_withheld(api, session_factory) -> None:
    old_webhook_envs(session_factory, ["old-1", "old-2", "old-3"])
    report, tally = run_backfill(session_factory, sample())
    assert (report.to_delete, report.held, report.deletions_withheld) == (3, 13, True)
    assert any("nothing was deleted" in note for note in tally.notes)
    names = [e["name"] for e in api.get("/api/v1/apps/shop/envs").json()["items"]]
    assert names == ["dev", "old-1", "old-2", "old-3", "prod", "staging"]
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Event).where(Event.action == "Delete")) == 0
    report, _ = run_backfill(session_factory, sample(), max_delete=0.5)  # the operator raises the bound
    assert (report.to_delete, report.deletions_withheld) == (3, False)
    assert [e["name"] for e in api.get("/api/v1/apps/shop/envs").json()["items"]] == ["dev", "prod", "staging"]


def test_an_app_gone_from_the_source_is_deleted_with_what_it_owned(api, session_factory) -> None:
    fake = sample()
    run_backfill(session_factory, fake)
    del fake.apps["商城"]
    report, _ = run_backfill(session_factory, fake, max_delete=0.5)
    assert report.to_delete == 1  # the app only: its env is hidden by the app's deletion
    assert [a["name"] for a in api.get("/api/v1/apps").json()["items"]] == ["shop"]
    assert [e["app_name"] for e in api.get("/api/v1/envs").json()["items"]] == ["shop", "shop", "shop"]


def test_backoff_on_429_and_500(session_factory) -> None:
    fake = sample()
    fake.fail(r"/apps/shop/envs$", 429, times=2)
    fake.fail(r"/apps:search$", 500, times=1)
    sleeps: list[float] = []
    _, tally = run_backfill(session_factory, fake, sleeps=sleeps)
    assert tally.counts == {"applied": 11}
    assert len(sleeps) == 3 and all(0 <= s <= 30 for s in sleeps)


def test_401_stops_with_a_clear_message(session_factory) -> None:
    with pytest.raises(AppStackError, match="CMDB_SYNC_APPSTACK_TOKEN"):
        run_backfill(session_factory, sample(), token="expired")
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 0


def test_interrupted_then_resumed_without_duplicates(session_factory) -> None:
    fake = sample()
    fake.fail(r"/apps/商城/envs$", 500, times=-1)
    with pytest.raises(AppStackError, match="resume"):
        run_backfill(session_factory, fake)
    with session_factory() as session:
        run = session.scalars(select(BackfillRun)).one()
        journaled = session.scalar(select(func.count()).select_from(Event))
    assert run.finished_at is None and run.completed_apps == ["shop"]
    assert journaled == 10  # shop: app, 3 envs, 2 groups, 3 orchestrations; 商城: its app event
    shop_env_calls = fake.hits["/oapi/v1/appstack/organizations/org-1/apps/shop/envs"]

    fake.failures.clear()
    report, tally = run_backfill(session_factory, fake)
    assert (report.resumed, report.run_id, report.apps_skipped) == (True, run.id, 1)
    assert tally.counts == {"duplicate": 1, "applied": 1}  # 商城's app again (same id), then its env
    assert fake.hits["/oapi/v1/appstack/organizations/org-1/apps/shop/envs"] == shop_env_calls
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 11
        assert session.scalars(select(BackfillRun)).one().finished_at is not None
        assert len(session.scalars(select(Env)).all()) == 4
    report, tally = run_backfill(session_factory, fake)  # a later run starts afresh
    assert report.resumed is False and report.run_id != run.id
    assert tally.counts == {"applied": 11}


def test_backfill_command(engine, migrated_url, monkeypatch) -> None:
    fake = sample()
    monkeypatch.setattr(cli_module, "appstack_http", lambda base_url, token: fake.client(token))
    env = {"CMDB_SYNC_DATABASE_URL": migrated_url, "CMDB_SYNC_APPSTACK_TOKEN": TOKEN}
    result = CliRunner().invoke(main, ["backfill", "--org", "org-1"], env=env)
    assert result.exit_code == 0, result.output
    assert "2 apps (0 done before), 11 processed (applied: 11)" in result.output
    missing = CliRunner().invoke(main, ["backfill", "--org", "org-1"], env={"CMDB_SYNC_DATABASE_URL": migrated_url})
    assert missing.exit_code == 1 and "CMDB_SYNC_APPSTACK_TOKEN is not set" in missing.output
    refused = CliRunner().invoke(main, ["backfill", "--org", "org-1"], env={**env, "CMDB_SYNC_APPSTACK_TOKEN": "bad"})
    assert refused.exit_code == 1 and "answered 401" in refused.output
    bad_bound = CliRunner().invoke(main, ["backfill", "--org", "org-1", "--max-delete", "lots"], env=env)
    assert bad_bound.exit_code == 2 and "--max-delete" in bad_bound.output


def test_backfill_command_says_when_deletions_are_withheld(engine, session_factory, migrated_url, monkeypatch) -> None:
    old_webhook_envs(session_factory, ["old-1", "old-2", "old-3"])
    fake = sample()
    monkeypatch.setattr(cli_module, "appstack_http", lambda base_url, token: fake.client(token))
    env = {"CMDB_SYNC_DATABASE_URL": migrated_url, "CMDB_SYNC_APPSTACK_TOKEN": TOKEN}
    result = CliRunner().invoke(main, ["backfill", "--org", "org-1"], env=env)
    assert result.exit_code == 1
    assert "3 of 13 held objects are gone from the source" in result.output


@pytest.mark.parametrize(("text", "fraction"), [("10%", 0.10), ("10", 0.10), ("0.25", 0.25), ("0", 0.0), ("100%", 1.0)])
def test_max_delete_forms(text, fraction) -> None:
    assert parse_max_delete(text) == pytest.approx(fraction)


@pytest.mark.parametrize("text", ["-1", "150%", "ten"])
def test_max_delete_refuses_nonsense(text) -> None:
    with pytest.raises(ValueError, match="--max-delete"):
        parse_max_delete(text)


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        (1722236764000, 1722236764000),
        ("1722236764000", 1722236764000),
        ("2024-07-29T07:10:27.934Z", 1722237027934),
        ("2024-09-01 00:00:00", 1725120000000),
        (None, None),
        ("garbage", None),
        (float("nan"), None),  # Python's JSON reader takes NaN and Infinity: int() of them raised
        (float("inf"), None),
    ],
)
def test_openapi_timestamps(value, ms) -> None:
    assert epoch_ms(value) == ms


def test_a_page_of_another_shape_stops_the_backfill_and_deletes_nothing(api, session_factory) -> None:
    """Read as an empty page, envs listed in an object instead of a list counted as gone from the
    source, and the run deleted them."""
    run_backfill(session_factory, sample())
    fake = sample()
    fake.garble(r"/apps/shop/envs$", {"data": {"name": "dev"}, "nextToken": None})
    with pytest.raises(AppStackError, match=r'/apps/shop/envs with JSON that is not an object whose "data" is a list'):
        run_backfill(session_factory, fake, max_delete=1.0)
    assert [e["name"] for e in api.get("/api/v1/apps/shop/envs").json()["items"]] == ["dev", "prod", "staging"]


@pytest.mark.parametrize(
    ("path", "payload", "expected"),
    [
        (r"/apps:search$", "not a page", 'not an object whose "data" is a list'),
        (r"/apps:search$", {"data": 5}, 'not an object whose "data" is a list'),
        (r"/variableGroups$", {"shop-vars": {}}, "not a list of variable groups"),
        (r"/orchestrations$", [], 'not an object whose "records" is a list'),
        (r"/apps:search$", {"data": [], "nextToken": {"page": 2}}, 'not an object whose "nextToken" is a string'),
    ],
)
def test_answers_of_another_shape_stop_with_what_was_asked(session_factory, path, payload, expected) -> None:
    fake = sample()
    fake.garble(path, payload)
    with pytest.raises(AppStackError, match=expected):
        run_backfill(session_factory, fake)


def test_a_next_token_given_twice_stops_the_walk(session_factory) -> None:
    """A server that gives back the token it was sent would be walked for ever."""
    fake = sample()
    fake.garble(r"/apps:search$", {"data": [fake.apps["shop"]], "nextToken": "again"}, times=3)
    with pytest.raises(AppStackError, match="nextToken it gave before"):
        run_backfill(session_factory, fake)
    assert fake.hits[f"{fake.prefix}/apps:search"] == 2


def test_a_variable_group_whose_vars_are_not_a_list_fails_alone(session_factory) -> None:
    fake = sample()
    fake.groups["shop"][0] = {**fake.groups["shop"][0], "vars": 5}  # iterating it was a TypeError
    _, tally = run_backfill(session_factory, fake)
    assert tally.counts == {"applied": 10, "failed": 1}
    with session_factory() as session:
        (error,) = session.scalars(select(Event.error).where(Event.status == "failed")).all()
    assert error.startswith("objectAttributes.vars: ")


def test_backfill_of_one_app_touches_nothing_else(api, session_factory) -> None:
    old_webhook_envs(session_factory, ["legacy"])  # shop's: gone from the source
    other = env_event("Create", 1722236764000, name="keep", app="other")
    ingest(session_factory, other["headers"], raw(other))
    fake = sample()
    report, tally = run_backfill(session_factory, fake, app="shop", max_delete=0.5)
    assert report.apps_seen == 1
    assert not any("商城" in path for path in fake.requests)
    assert "/oapi/v1/appstack/organizations/org-1/apps/shop" in fake.requests  # the one app, fetched by name
    assert report.to_delete == 1  # shop's legacy env; the other app is out of scope
    assert [e["name"] for e in api.get("/api/v1/apps/shop/envs").json()["items"]] == ["dev", "prod", "staging"]
    assert [e["name"] for e in api.get("/api/v1/apps/other/envs").json()["items"]] == ["keep"]


def test_403_stops_with_a_clear_message(session_factory) -> None:
    fake = sample()
    fake.fail(r"/apps:search$", 403, times=-1)
    with pytest.raises(AppStackError, match="answered 403.*read permission"):
        run_backfill(session_factory, fake)
