"""Section 2 of the contract: versions, tombstones, children, app deletion, implied apps."""

from __future__ import annotations

from sqlalchemy import select

from cmdb_sync.ingest import ingest
from cmdb_sync.models import App, Env, Orchestration, VariableGroup
from cmdb_sync.read.visibility import effective_deleted_at, owned_by
from tests.helpers import app_event, env_event, orchestration_event, raw, variable_group_event


def send(session_factory, event) -> str:
    return ingest(session_factory, event["headers"], raw(event)).status


def env_state(session_factory, name: str = "prod"):
    with session_factory() as session:
        return session.scalars(select(Env).where(Env.name == name)).one()


def visible_names(session_factory, model) -> set[str]:
    """Names of the app-owned objects that exist now, by the contract's deletion rules."""
    with session_factory() as session:
        rows = session.execute(
            select(model.name).join(App, owned_by(model)).where(effective_deleted_at(model).is_(None))
        )
        return {name for (name,) in rows}


def test_last_writer_wins_by_event_time_not_arrival(session_factory) -> None:
    newer = env_event("Update", 2000, description="newer")
    older = env_event("Update", 1000, description="older")
    assert send(session_factory, newer) == "applied"
    assert send(session_factory, older) == "stale"
    env = env_state(session_factory)
    assert env.description == "newer"
    assert env.version_id == newer["body"]["id"]


def test_same_millisecond_tie_is_broken_by_id_in_either_order(session_factory, engine) -> None:
    low = env_event("Update", 1000, description="low", event_id="aaaa")
    high = env_event("Update", 1000, description="high", event_id="bbbb")
    assert send(session_factory, high) == "applied"
    assert send(session_factory, low) == "stale"
    assert env_state(session_factory).description == "high"


def test_same_millisecond_tie_lower_id_first(session_factory) -> None:
    low = env_event("Update", 1000, description="low", event_id="aaaa")
    high = env_event("Update", 1000, description="high", event_id="bbbb")
    assert send(session_factory, low) == "applied"
    assert send(session_factory, high) == "applied"
    assert env_state(session_factory).description == "high"


def test_delete_then_older_update_stays_deleted(session_factory) -> None:
    assert send(session_factory, env_event("Create", 1000)) == "applied"
    assert send(session_factory, env_event("Delete", 3000)) == "applied"
    assert send(session_factory, env_event("Update", 2000, description="late")) == "stale"
    env = env_state(session_factory)
    assert env.deleted_at is not None and env.deleted_at.timestamp() == 3.0
    assert env.description is None


def test_newer_create_brings_a_deleted_object_back(session_factory) -> None:
    send(session_factory, env_event("Delete", 2000))
    assert send(session_factory, env_event("Create", 3000, description="again")) == "applied"
    env = env_state(session_factory)
    assert env.deleted_at is None and env.description == "again"


def test_children_are_replaced_as_a_whole(session_factory) -> None:
    from sqlalchemy.orm import selectinload

    send(session_factory, env_event("Create", 1000, labels={"envType": "production", "team": "a"}))
    send(session_factory, env_event("Update", 2000, labels={"region": "cn"}))
    with session_factory() as session:
        env = session.scalars(select(Env).options(selectinload(Env.labels))).one()
    assert [(l.name, l.value) for l in env.labels] == [("region", "cn")]


def test_app_delete_hides_older_children_not_newer_ones(session_factory) -> None:
    send(session_factory, app_event("Create", 500))
    send(session_factory, env_event("Create", 1000, name="old"))
    send(session_factory, variable_group_event("Create", 1500, name="old-vars", values={"k": "v"}))
    send(session_factory, orchestration_event("Create", 1600, sn="old@K8S"))
    assert send(session_factory, app_event("Delete", 2000)) == "applied"
    assert visible_names(session_factory, Env) == set()  # the app is deleted: nothing under it
    send(session_factory, env_event("Create", 3000, name="new"))
    assert visible_names(session_factory, Env) == set()
    assert send(session_factory, app_event("Create", 4000)) == "applied"
    assert visible_names(session_factory, Env) == {"new"}
    assert visible_names(session_factory, VariableGroup) == set()
    with session_factory() as session:
        orchestration_hidden = session.execute(
            select(effective_deleted_at(Orchestration)).join(App, owned_by(Orchestration))
        ).scalar_one()
    assert orchestration_hidden is not None and orchestration_hidden.timestamp() == 2.0


def test_a_stale_app_delete_still_hides_what_is_older_than_it(session_factory) -> None:
    send(session_factory, app_event("Create", 5000))
    send(session_factory, env_event("Create", 2500, name="before"))
    send(session_factory, env_event("Create", 3500, name="after"))
    assert send(session_factory, app_event("Delete", 3000)) == "stale"
    assert visible_names(session_factory, Env) == {"after"}
    with session_factory() as session:
        app = session.scalars(select(App)).one()
    assert app.deleted_at is None and app.purged_at.timestamp() == 3.0


def test_purge_time_only_moves_forward(session_factory) -> None:
    send(session_factory, app_event("Delete", 3000))
    send(session_factory, app_event("Delete", 2000))
    with session_factory() as session:
        assert session.scalars(select(App)).one().purged_at.timestamp() == 3.0


def test_child_of_unknown_app_creates_it_without_a_version(session_factory) -> None:
    assert send(session_factory, env_event("Create", 5000, app="newapp")) == "applied"
    with session_factory() as session:
        app = session.scalars(select(App)).one()
    assert (app.org_id, app.name, app.version_at, app.deleted_at) == ("org-1", "newapp", None, None)
    assert visible_names(session_factory, Env) == {"prod"}
    assert send(session_factory, app_event("Create", 100, name="newapp", description="told later")) == "applied"
    with session_factory() as session:
        assert session.scalars(select(App)).one().description == "told later"


def test_org_level_variable_group_has_no_app(session_factory) -> None:
    assert send(session_factory, variable_group_event("Create", 1000, app=None, values={"a": "1"})) == "applied"
    with session_factory() as session:
        group = session.scalars(select(VariableGroup)).one()
        assert session.scalars(select(App)).all() == []
    assert group.app_name == ""


def test_same_name_in_two_orgs_are_two_objects(session_factory) -> None:
    send(session_factory, env_event("Create", 1000, org="org-a"))
    send(session_factory, env_event("Create", 1000, org="org-b"))
    with session_factory() as session:
        assert sorted(e.org_id for e in session.scalars(select(Env))) == ["org-a", "org-b"]
