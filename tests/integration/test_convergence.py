"""Convergence: any delivery order, with any duplicates, ends where the sorted order ends."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmdb_sync.ingest import ingest
from tests.conftest import _empty_all_tables
from tests.helpers import (
    app_event,
    change_order_event,
    dump_state,
    env_event,
    orchestration_event,
    raw,
    variable_group_event,
)

# Few distinct times, so ties (same millisecond, different ids) are common.
TIMES = st.sampled_from([1000, 2000, 3000])


@st.composite
def event_sets(draw):
    """A small set of events touching one app, its envs, a variable group and an orchestration."""
    makers = [
        lambda t, i: app_event("Create", t, event_id=i, description="c"),
        lambda t, i: app_event("Update", t, event_id=i, description="u"),
        lambda t, i: app_event("Delete", t, event_id=i),
        lambda t, i: env_event("Create", t, event_id=i, labels={"tier": "a"}),
        lambda t, i: env_event("Update", t, event_id=i, labels={"tier": "b", "zone": "z"}, lock_by="x"),
        lambda t, i: env_event("Delete", t, event_id=i),
        lambda t, i: env_event("Create", t, event_id=i, name="staging"),
        lambda t, i: variable_group_event("Update", t, event_id=i, values={"k": "v"}),
        lambda t, i: variable_group_event("Delete", t, event_id=i),
        lambda t, i: orchestration_event("Update", t, event_id=i, message="m"),
        lambda t, i: orchestration_event("Delete", t, event_id=i),
        lambda t, i: change_order_event("co", t, event_id=i, state="RUNNING"),
        lambda t, i: change_order_event("co", t, event_id=i, state="SUCCESS", image="r/app:2"),
    ]
    chosen = draw(st.lists(st.sampled_from(range(len(makers))), min_size=2, max_size=8))
    return [makers[m](draw(TIMES), f"e{n:02d}") for n, m in enumerate(chosen)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_order_with_duplicates_converges_to_the_sorted_result(engine, session_factory, data) -> None:
    events = data.draw(event_sets())
    delivered = data.draw(st.permutations(events + data.draw(st.lists(st.sampled_from(events), max_size=4))))

    _empty_all_tables(engine)
    for event in sorted(events, key=lambda e: (e["body"]["time"], e["body"]["id"])):
        ingest(session_factory, event["headers"], raw(event))
    expected = dump_state(engine)

    _empty_all_tables(engine)
    for event in delivered:
        ingest(session_factory, event["headers"], raw(event))
    assert dump_state(engine) == expected
