"""Batches change nothing: any cut of a delivery stream into batches answers every delivery as
one-by-one processing in the same order does, and ends in the same state."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmdb_sync.ingest import Delivery, HeldConnection, ingest, ingest_batch
from tests.conftest import _empty_all_tables
from tests.helpers import dump_state, env_event, raw
from tests.integration.test_convergence import event_sets


def cut(items: list, sizes: list[int]) -> list[list]:
    batches, start = [], 0
    for size in sizes:
        if start >= len(items):
            break
        batches.append(items[start : start + size])
        start += size
    if start < len(items):
        batches.append(items[start:])
    return batches


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_batching_answers_and_ends_as_one_by_one(engine, session_factory, data) -> None:
    events = data.draw(event_sets())
    delivered = data.draw(st.permutations(events + data.draw(st.lists(st.sampled_from(events), max_size=4))))
    sizes = data.draw(st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=8))

    _empty_all_tables(engine)
    one_by_one = [ingest(session_factory, event["headers"], raw(event)).status for event in delivered]
    expected = dump_state(engine)

    _empty_all_tables(engine)
    batched = []
    for batch in cut(delivered, sizes):
        results = ingest_batch(session_factory, [Delivery(event["headers"], raw(event)) for event in batch])
        batched.extend(result.status for result in results)
    assert batched == one_by_one
    assert dump_state(engine) == expected


def test_a_batch_with_one_refused_delivery_answers_the_others(engine, session_factory) -> None:
    good = env_event("Create", 1000, name="prod")
    bad_json = {"headers": good["headers"], "body": None}
    later = env_event("Update", 2000, name="prod", lock_by="someone")
    results = ingest_batch(
        session_factory,
        [
            Delivery(good["headers"], raw(good)),
            Delivery(bad_json["headers"], b"{not json"),
            Delivery(later["headers"], raw(later)),
        ],
    )
    assert [type(r).__name__ for r in results] == ["IngestResult", "BadDelivery", "IngestResult"]
    assert [results[0].status, results[2].status] == ["applied", "applied"]
    state = dump_state(engine)
    assert [dict(row)["lock_by"] for row in state["envs"]] == ["'someone'"]


def test_a_delivery_the_database_refuses_does_not_fail_its_batch_mates(engine, session_factory) -> None:
    import random

    if engine.dialect.name != "postgresql":
        return  # SQLite stores any length: nothing there refuses it
    rng = random.Random(1)
    huge = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12_000))
    first = env_event("Create", 1000, name="prod")
    refused = env_event("Create", 1500, name=huge)  # larger than a btree index entry may be
    last = env_event("Create", 2000, name="staging")
    results = ingest_batch(session_factory, [Delivery(e["headers"], raw(e)) for e in (first, refused, last)])
    assert [results[0].status, results[2].status] == ["applied", "applied"]
    assert not (hasattr(results[1], "status") and results[1].status == "applied")
    assert sorted(dict(row)["name"] for row in dump_state(engine)["envs"]) == ["'prod'", "'staging'"]


def test_the_writers_held_connection_is_never_one_the_database_dropped(engine, session_factory) -> None:
    """The server's writer keeps its connection between batches, and gives it back to the pool
    (which pings what it hands out) after a pause: a connection the database dropped meanwhile is
    never the one a delivery is written on. Without the pause rule, the second delivery below would
    be written on the terminated connection and refused (503)."""
    if engine.dialect.name != "postgresql":
        return  # SQLite has no server to drop a connection
    held = HeldConnection(engine)
    try:
        first = env_event("Create", 1000, name="prod")
        (result,) = ingest_batch(session_factory, [Delivery(first["headers"], raw(first))], connect=held)
        assert result.status == "applied"
        with held() as conn:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            conn.rollback()
        with engine.connect() as other:
            assert other.exec_driver_sql("SELECT pg_terminate_backend(%(p)s)", {"p": pid}).scalar_one()
        held.IDLE_SECONDS = 0.0  # the pause has passed
        second = env_event("Create", 2000, name="staging")
        (result,) = ingest_batch(session_factory, [Delivery(second["headers"], raw(second))], connect=held)
        assert result.status == "applied"
        with held() as conn:
            assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() != pid
            conn.rollback()
    finally:
        held.close()
    assert sorted(dict(row)["name"] for row in dump_state(engine)["envs"]) == ["'prod'", "'staging'"]


def test_a_batch_replaces_each_child_table_of_its_objects_whether_it_has_rows_or_none(engine, session_factory) -> None:
    """A batch's env labels and profiles (an orchestration's placeholders and components) follow
    each snapshot: a table a snapshot sends no rows for is emptied, the others filled, and each
    snapshot is a version."""
    from sqlalchemy import func, select

    from cmdb_sync.models import Component, Env, EnvLabel, EnvProfile, Placeholder, Version
    from tests.helpers import orchestration_event

    _empty_all_tables(engine)
    first = [
        env_event("Create", 1000, name="a"),
        env_event("Create", 1000, name="b"),
        orchestration_event("Create", 1000),
    ]
    assert [r.status for r in ingest_batch(session_factory, [Delivery(e["headers"], raw(e)) for e in first])] == [
        "applied"
    ] * 3
    shed_profiles = env_event("Update", 2000, name="a", labels={"tier": "web", "zone": "z1"})
    shed_profiles["body"]["objectAttributes"]["profiles"] = []
    shed_labels = env_event("Update", 2000, name="b")
    shed_labels["body"]["objectAttributes"]["labelList"] = []
    orchestration = orchestration_event("Update", 2000)
    orchestration["body"]["objectAttributes"]["placeholderList"] = []
    orchestration["body"]["objectAttributes"]["componentList"].append(
        {"name": "deploy", "kind": "Deployment", "content": "---", "priority": 2, "type": "KUBERNETES"}
    )
    second = [shed_profiles, shed_labels, orchestration]
    assert [r.status for r in ingest_batch(session_factory, [Delivery(e["headers"], raw(e)) for e in second])] == [
        "applied"
    ] * 3

    with engine.connect() as conn:

        def of(env: str, column):  # noqa: ANN001, ANN202
            return sorted(
                conn.execute(select(column).join(Env, Env.id == column.table.c.env_id).where(Env.name == env)).scalars()
            )

        assert of("a", EnvLabel.name) == ["tier", "zone"]
        assert of("a", EnvProfile.name) == []
        assert of("b", EnvLabel.name) == []
        assert of("b", EnvProfile.name) == ["vars"]
        assert conn.execute(select(func.count()).select_from(Placeholder)).scalar_one() == 0
        assert sorted(conn.execute(select(Component.name)).scalars()) == ["deploy", "svc"]
        assert conn.execute(select(func.count()).select_from(Version)).scalar_one() == 6


def test_a_change_orders_jobs_are_replaced_with_their_stages_and_tasks(engine, session_factory) -> None:
    """A job's stages and a stage's tasks hold their parent's id, with no foreign key to delete them
    by cascade (migration 0010): replacing a change order's jobs deletes the rows below them too,
    alone and in a batch, on both databases, and leaves the other change orders' rows alone."""
    from sqlalchemy import func, select

    from cmdb_sync.models import ChangeOrderJob, ChangeOrderStage, ChangeOrderTask
    from tests.helpers import change_order_event

    def wide(sn: str, time: int, jobs: int) -> dict:
        event = change_order_event(sn, time)
        (job,) = event["body"]["objectAttributes"]["jobs"]
        (stage,) = job["stages"]
        stage["tasks"] = [{**stage["tasks"][0], "sn": f"{sn}-t{t}"} for t in range(2)]
        job["stages"] = [{**stage, "sn": f"{sn}-s{s}"} for s in range(2)]
        event["body"]["objectAttributes"]["jobs"] = [{**job, "sn": f"{sn}-j{j}"} for j in range(jobs)]
        return event

    def counts() -> list[int]:
        with engine.connect() as conn:
            return [
                conn.execute(select(func.count()).select_from(model)).scalar_one()
                for model in (ChangeOrderJob, ChangeOrderStage, ChangeOrderTask)
            ]

    _empty_all_tables(engine)
    first = [wide("co-1", 1000, 2), wide("co-2", 1000, 2)]
    assert [r.status for r in ingest_batch(session_factory, [Delivery(e["headers"], raw(e)) for e in first])] == [
        "applied"
    ] * 2
    assert counts() == [4, 8, 16]
    narrower = wide("co-1", 2000, 1)  # alone: 2 jobs -> 1
    assert ingest(session_factory, narrower["headers"], raw(narrower)).status == "applied"
    assert counts() == [3, 6, 12]
    second = [wide("co-2", 2000, 3), wide("co-1", 3000, 0)]  # in a batch: 2 -> 3, 1 -> 0
    assert [r.status for r in ingest_batch(session_factory, [Delivery(e["headers"], raw(e)) for e in second])] == [
        "applied"
    ] * 2
    assert counts() == [3, 6, 12]
    with engine.connect() as conn:
        tasks_of_live_stages = conn.execute(
            select(func.count())
            .select_from(ChangeOrderTask)
            .join(ChangeOrderStage, ChangeOrderStage.id == ChangeOrderTask.stage_id)
            .join(ChangeOrderJob, ChangeOrderJob.id == ChangeOrderStage.job_id)
        ).scalar_one()
    assert tasks_of_live_stages == 12
    dump_state(engine)  # raises on a row whose parent is gone
