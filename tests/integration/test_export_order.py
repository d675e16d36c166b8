"""An export imported into an empty database answers every delivery as the journal did.

The journal knows the order of arrival only to the millisecond (``received_at``), and the server
journals a whole group-commit batch in one: the property delivers a random world of App and Env
events (deletes, stale and duplicate ones among them) in random batches, each batch sharing one
received time, exports it, imports the export into an empty database, and compares every status
and the whole state."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from cmdb_sync import archive
from cmdb_sync.archive import documents, export_lines, import_documents
from cmdb_sync.ingest import Delivery, ingest_batch
from cmdb_sync.models import Event
from cmdb_sync.progress import reporting
from tests.conftest import _empty_all_tables
from tests.helpers import app_event, dump_state, env_event, raw

START = datetime(2026, 12, 1, tzinfo=UTC)


@st.composite
def worlds(draw: st.DrawFn) -> list[list[dict]]:
    """Batches of deliveries, in the order they arrive; times collide, ids are random."""
    events = []
    for _ in range(draw(st.integers(1, 24))):
        time = draw(st.integers(1, 12)) * 1000
        event_id = draw(st.text("abcdefgh", min_size=4, max_size=4))
        if draw(st.integers(0, 5)) == 0:
            action = draw(st.sampled_from(["Create", "Update", "Delete"]))
            events.append(app_event(action, time, event_id=f"app-{event_id}"))
        else:
            name = draw(st.sampled_from(["prod", "test"]))
            action = draw(st.sampled_from(["Create", "Update", "Update", "Delete"]))
            labels = {"n": str(draw(st.integers(0, 3)))}
            events.append(env_event(action, time, name=name, labels=labels, event_id=f"env-{event_id}"))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(events) - 1)), max_size=4)))
    return [events[a:b] for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True) if events[a:b]]


def statuses(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(Event.id, Event.status)).all())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(world=worlds())
def test_an_import_of_an_export_answers_as_the_journal_did(engine, session_factory, monkeypatch, world) -> None:
    monkeypatch.setattr(archive, "IMPORT_LANES", 1)  # in this process: the order is what is tested, not the lanes
    _empty_all_tables(engine)
    for number, batch in enumerate(world):
        at = START + timedelta(milliseconds=number)  # a group-commit batch shares its received time
        ingest_batch(session_factory, [Delivery(event["headers"], raw(event), at) for event in batch])
    before, state = statuses(engine), dump_state(engine)
    lines = "\n".join(export_lines(session_factory)) + "\n"

    _empty_all_tables(engine)
    with reporting("import", stream=io.StringIO()) as reporter:
        import_documents(session_factory, documents("export", io.StringIO(lines)), reporter)
    assert reporter.tally.notes == [] and sum(reporter.tally.counts.values()) == len(before)
    assert statuses(engine) == before
    assert dump_state(engine) == state


@pytest.mark.parametrize("batch_size", [1, 2, 500])
def test_the_order_does_not_depend_on_the_reads_batch_size(engine, session_factory, monkeypatch, batch_size) -> None:
    at = START
    world = [env_event("Update", t, name="prod", event_id=f"e{t}") for t in (5000, 3000, 9000, 1000, 7000)]
    ingest_batch(session_factory, [Delivery(event["headers"], raw(event), at) for event in world])
    later = env_event("Update", 2000, name="prod", event_id="a-later")
    ingest_batch(session_factory, [Delivery(later["headers"], raw(later), at + timedelta(milliseconds=1))])
    monkeypatch.setattr(archive, "EXPORT_BATCH", batch_size)
    ids = [json.loads(line)["body"]["id"] for line in export_lines(session_factory)]
    # the applied ones of the first millisecond oldest first, then its stale ones, then the next
    assert ids == ["e5000", "e9000", "e1000", "e3000", "e7000", "a-later"]


def test_a_millisecond_shared_by_more_rows_than_are_held_is_written_whole_in_bounded_chunks(
    engine, session_factory, monkeypatch
) -> None:
    """A file imported with one ``received_at`` on every line: its rows are ordered a chunk at a
    time instead of all at once in memory, and none is lost or written twice."""
    world = [env_event("Update", 1000 * (n + 1), name=f"env-{n % 3}", event_id=f"e{n:02}") for n in range(20)]
    ingest_batch(session_factory, [Delivery(event["headers"], raw(event), START) for event in world])
    monkeypatch.setattr(archive, "EXPORT_BATCH", 3)
    monkeypatch.setattr(archive, "HELD_AT_MOST", 6)
    chunks = list(archive.received_order(session_factory, select(*archive.EXPORTED_COLUMNS), 3))
    assert max(len(chunk) for chunk in chunks) <= 6 + 3
    assert sorted(row.id for chunk in chunks for row in chunk) == sorted(e["body"]["id"] for e in world)
