"""`cmdb-sync journal archive --before`: old months out of the journal into a gzip'd JSON Lines
file, the inventory and as-of reads from the archive's horizon on unchanged, and on PostgreSQL the
journal partitioned by received month."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from cmdb_sync import migrate
from cmdb_sync.cli import main
from cmdb_sync.db import make_engine, make_session_factory
from cmdb_sync.errors import Archived
from cmdb_sync.ingest import Delivery, ingest_batch
from cmdb_sync.models import Event, JournalArchive, Version
from cmdb_sync.partitions import ensure_partitions, monthly_partitions, partitioned
from cmdb_sync.read import history
from cmdb_sync.read.asof import AsOf
from cmdb_sync.read.common import Window
from cmdb_sync.status import Status
from tests.helpers import app_event, delivery, dump_state, env_event, raw


def ms(month: int, day: int) -> int:
    return int(datetime(2025, month, day, tzinfo=UTC).timestamp() * 1000)


def at(month: int, day: int) -> datetime:
    return datetime(2025, month, day, tzinfo=UTC)


# (delivery, received): three months of deliveries; the archive takes January and February
WORLD = [
    (app_event("Create", ms(1, 1), event_id="app-1"), at(1, 1)),
    (env_event("Create", ms(1, 2), name="a", event_id="a-1"), at(1, 2)),
    (env_event("Update", ms(1, 3), name="a", lock_by="x", event_id="a-2"), at(1, 3)),
    (env_event("Create", ms(1, 4), name="b", event_id="b-1"), at(1, 4)),
    (delivery("Pipeline", "Run", {"name": "p"}, time=ms(1, 5), event_id="unsupported-1"), at(1, 5)),
    (env_event("Delete", ms(2, 1), name="b", event_id="b-2"), at(2, 1)),
    (env_event("Create", ms(2, 2), name="c", event_id="c-1"), at(2, 2)),
    (env_event("Update", ms(3, 1), name="a", lock_by="y", event_id="a-3"), at(3, 1)),
    (env_event("Update", ms(3, 2), name="c", lock_by="z", event_id="c-2"), at(3, 2)),
]
ARCHIVED = {"app-1", "a-1", "a-2", "b-1", "unsupported-1", "b-2", "c-1"}
KEPT = {"app-1", "a-2", "b-2", "c-1"}  # each object's last archived snapshot (b's is its tombstone)


def receive(engine, world) -> list:
    results = ingest_batch(engine, [Delivery(event["headers"], raw(event), received) for event, received in world])
    return [result.status for result in results]


def envs_as_of(session_factory, moment: datetime) -> list[tuple[str, str | None]]:
    with session_factory() as session:
        page = AsOf(session, moment).list_envs(Window(100, None), app_name=None, org_id=None, labels=[], artifact=None)
        return [(env.name, env.lock_by) for env in page.items]


def run(url: str, *args: str):
    return CliRunner().invoke(main, list(args), env={"CMDB_SYNC_DATABASE_URL": url})


def finished_when_run_again(engine, url: str, before_state: dict) -> None:
    """The archive of January and February, begun and stopped while trimming, run again: it
    continues, keeps each object's last snapshots, and the inventory is what it was."""
    again = run(url, "journal", "archive", "--before", "2025-03")
    assert again.exit_code == 0, again.output
    assert "continuing the archive begun" in again.stderr
    with engine.connect() as conn:
        assert set(conn.execute(select(Event.id)).scalars()) == KEPT | {"a-3", "c-2"}
        assert conn.scalar(select(JournalArchive.finished_at)) is not None
    assert dump_state(engine) == before_state


def test_archive_writes_the_old_months_and_keeps_what_the_inventory_is_made_of(
    engine, migrated_url, session_factory, databases, tmp_path
) -> None:
    assert receive(engine, WORLD).count(Status.APPLIED) == 8
    ensure_partitions(engine)  # the deliveries of 2025 sit in the default partition until their months exist
    before_state = dump_state(engine)
    as_of_then = envs_as_of(session_factory, at(2, 15))
    file = tmp_path / "old.jsonl.gz"

    result = run(migrated_url, "journal", "archive", "--before", "2025-03", "--to", str(file))
    assert result.exit_code == 0, result.output
    assert f"archived: 7 deliveries received before 2025-03 in {file}" in result.stderr
    assert "4 kept in the journal" in result.stderr

    lines = [json.loads(line) for line in gzip.open(file, "rt", encoding="utf-8")]
    assert [line["body"]["id"] for line in lines] == [e["body"]["id"] for e, r in WORLD if r < at(3, 1)]
    with engine.connect() as conn:
        journal = set(conn.execute(select(Event.id)).scalars())
        versions = set(conn.execute(select(Version.event_id)).scalars())
        record = conn.execute(select(JournalArchive)).one()
    assert journal == KEPT | {"a-3", "c-2"}
    assert versions == KEPT | {"a-3", "c-2"}
    assert record.sha256 == hashlib.sha256(file.read_bytes()).hexdigest()
    assert (record.archived, record.kept, record.horizon) == (7, 4, at(2, 2))
    assert record.finished_at is not None

    assert dump_state(engine) == before_state  # the inventory is what it was
    assert envs_as_of(session_factory, at(2, 15)) == as_of_then  # and so is the past from the horizon on
    with session_factory() as session, pytest.raises(Archived, match="archived on .*as of 2025-02-02T00:00:00"):
        AsOf(session, at(1, 31))
    with session_factory() as session:
        page = history.history(session, "Env", "shop", "a", Window(10, None), org_id=None)
    assert [version.event_id for version in page.items] == ["a-3", "a-2"]
    assert page.archived_before == at(3, 1)

    # an archived delivery sent again is a duplicate, and stays out of the journal
    assert receive(engine, [WORLD[1]]) == [Status.DUPLICATE]
    with engine.connect() as conn:
        assert conn.scalar(select(Event.id).where(Event.id == "a-1")) is None

    stats = run(migrated_url, "journal", "stats")
    assert (
        f"archived before 2025-03 (on {record.archived_at:%Y-%m-%d}): 7 deliveries in {file}, 4 of them kept"
        in stats.stdout
    )
    (share,) = [
        json.loads(line)
        for line in run(migrated_url, "journal", "stats", "--json").stdout.splitlines()
        if "archive" in line
    ]
    assert share["archive"]["sha256"] == record.sha256 and share["archive"]["horizon"] == "2025-02-02T00:00:00.000Z"

    again = run(migrated_url, "journal", "archive", "--before", "2025-03", "--to", str(tmp_path / "again.jsonl.gz"))
    assert again.exit_code == 1 and "archived already" in again.output

    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            assert partitioned(conn)
            months = monthly_partitions(conn)
            assert {at(1, 1), at(2, 1), at(3, 1)} <= months.keys()
            held = {
                name: conn.execute(text(f"SELECT count(*) FROM {name}")).scalar()
                for name in ("events_2025_01", "events_2025_02", "events_2025_03", "events_default")
            }
        assert held == {"events_2025_01": 2, "events_2025_02": 2, "events_2025_03": 2, "events_default": 0}

    # the archive and the rest of the journal, imported into a new database, make the same inventory
    rest = tmp_path / "rest.jsonl"
    assert run(migrated_url, "export", "--output", str(rest)).exit_code == 0
    fresh = databases.fresh(engine.dialect.name)
    migrate.upgrade(fresh)
    imported = run(fresh, "import", str(file), str(rest))
    assert imported.exit_code == 0, imported.output
    other = make_engine(fresh)
    try:
        assert dump_state(other) == before_state
        assert envs_as_of(make_session_factory(other), at(1, 31)) == [("a", "x"), ("b", None)]
    finally:
        other.dispose()


def test_a_rebuild_after_an_archive_makes_the_same_inventory(engine, migrated_url, tmp_path) -> None:
    receive(engine, WORLD)
    before_state = dump_state(engine)
    file = tmp_path / "old.jsonl.gz"
    assert run(migrated_url, "journal", "archive", "--before", "2025-03", "--to", str(file)).exit_code == 0
    rebuilt = run(migrated_url, "replay", "--rebuild", "--restart")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert dump_state(engine) == before_state


def test_an_archive_stopped_while_trimming_finishes_when_run_again(engine, migrated_url, tmp_path, monkeypatch) -> None:
    from cmdb_sync import journal_archive

    receive(engine, WORLD)
    before_state = dump_state(engine)
    real_trim = journal_archive._trim

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(journal_archive, "_trim", stopped)
    file = tmp_path / "old.jsonl.gz"
    first = run(migrated_url, "journal", "archive", "--before", "2025-03", "--to", str(file))
    assert first.exit_code == 130 and file.exists()
    assert "archived before it stopped: 7 processed" in first.stderr, first.stderr
    assert "stopped by SIGINT: what was written is committed; run the same command again to finish it" in first.stderr
    with engine.connect() as conn:
        assert conn.scalar(select(JournalArchive.finished_at)) is None
        assert len(conn.execute(select(Event.id)).all()) == len(WORLD)  # nothing removed yet
    with engine.connect() as conn, pytest.raises(Archived):  # but as-of reads before it are refused already
        AsOf(make_session_factory(engine)(bind=conn), at(1, 31))

    other = run(migrated_url, "journal", "archive", "--before", "2025-02", "--to", str(tmp_path / "other.jsonl.gz"))
    assert other.exit_code == 1 and "archive --before 2025-03` to finish it first" in other.output
    monkeypatch.setattr(journal_archive, "_trim", real_trim)
    finished_when_run_again(engine, migrated_url, before_state)


def test_an_archive_stopped_while_writing_its_file_leaves_nothing_behind(
    engine, migrated_url, tmp_path, monkeypatch
) -> None:
    from cmdb_sync import journal_archive

    receive(engine, WORLD)
    written = []

    def line_then_stopped(event):  # noqa: ANN001, ANN202
        if written:
            raise KeyboardInterrupt
        written.append(event.id)
        return json.dumps({"id": event.id})

    monkeypatch.setattr(journal_archive, "export_line", line_then_stopped)
    file = tmp_path / "old.jsonl.gz"
    first = run(migrated_url, "journal", "archive", "--before", "2025-03", "--to", str(file))
    assert first.exit_code == 130, first.output
    assert list(tmp_path.iterdir()) == []  # neither the file nor its .partial
    with engine.connect() as conn:
        assert conn.scalar(select(JournalArchive.id)) is None
        assert len(conn.execute(select(Event.id)).all()) == len(WORLD)
    monkeypatch.undo()
    second = run(migrated_url, "journal", "archive", "--before", "2025-03", "--to", str(file))
    assert second.exit_code == 0, second.output
    with gzip.open(file, "rt", encoding="utf-8") as archived:
        assert {json.loads(line)["body"]["id"] for line in archived} == ARCHIVED


@pytest.mark.postgres_only
def test_an_archive_stopped_by_sigterm_says_so_and_finishes_when_run_again(databases, tmp_path) -> None:
    """``kill`` or systemd stops an archive waiting for the journal's lock (its trimming): it says
    what it did and how to go on, and exits 143; the same command finishes it."""
    import os
    import signal
    import sys

    from tests.helpers import stopped
    from tests.integration.test_operations import wait_for_lock_waiters

    migrated_url = databases.fresh("postgresql")
    migrate.upgrade(migrated_url)
    engine = make_engine(migrated_url)
    receive(engine, WORLD)
    before_state = dump_state(engine)
    holder = engine.connect()
    holder.exec_driver_sql("LOCK TABLE events IN SHARE MODE")  # the trimming's deletes wait on it
    file = tmp_path / "old.jsonl.gz"
    command = [sys.executable, "-m", "cmdb_sync", "journal", "archive", "--before", "2025-03", "--to", str(file)]
    env = {**os.environ, "CMDB_SYNC_DATABASE_URL": migrated_url}

    def terminate_while_trimming_waits(archiving) -> None:  # noqa: ANN001
        wait_for_lock_waiters(engine, 1)
        archiving.send_signal(signal.SIGTERM)

    returncode, err = stopped(command, env, holder, terminate_while_trimming_waits)
    assert returncode == 128 + signal.SIGTERM, err
    assert "archived before it stopped: 7 processed" in err, err
    assert "stopped by SIGTERM: what was written is committed; run the same command again to finish it" in err
    assert "Traceback" not in err, err
    assert file.exists()
    with engine.connect() as conn:
        assert conn.scalar(select(JournalArchive.finished_at)) is None
        assert len(conn.execute(select(Event.id)).all()) == len(WORLD)  # the batch it was deleting rolled back

    finished_when_run_again(engine, migrated_url, before_state)
    engine.dispose()


def test_nothing_to_archive_is_said_plainly(engine, migrated_url, tmp_path) -> None:
    receive(engine, WORLD[-2:])
    result = run(migrated_url, "journal", "archive", "--before", "2025-03", "--to", str(tmp_path / "x.jsonl.gz"))
    assert result.exit_code == 1 and "no deliveries were received before 2025-03" in result.output
    assert not (tmp_path / "x.jsonl.gz").exists()
    first = run(migrated_url, "journal", "archive", "--before", "0001-01", "--to", str(tmp_path / "x.jsonl.gz"))
    assert first.exit_code == 1 and "no deliveries were received before 0001-01: nothing" in first.output
    bad = run(migrated_url, "journal", "archive", "--before", "March")
    assert bad.exit_code == 2 and "is not a month like 2025-01" in bad.output


def test_an_archive_file_that_cannot_be_written_is_refused_and_nothing_is_archived(
    engine, migrated_url, tmp_path
) -> None:
    receive(engine, WORLD)
    result = run(migrated_url, "journal", "archive", "--before", "2025-03", "--to", str(tmp_path / "no" / "x.jsonl.gz"))
    assert result.exit_code == 1, result.output  # was a FileNotFoundError traceback
    assert "cannot write" in result.output and "No such file or directory; nothing was archived" in result.output
    with engine.connect() as conn:
        assert conn.scalar(select(JournalArchive.id)) is None
        assert len(conn.execute(select(Event.id)).all()) == len(WORLD)


@pytest.mark.postgres_only
def test_a_month_is_made_for_deliveries_in_the_default_partition(databases) -> None:
    url = databases.fresh("postgresql")
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        _month_made(engine)
    finally:
        engine.dispose()


def _month_made(engine) -> None:
    receive(engine, [WORLD[0]])  # January 2025 has no partition of its own yet
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events_default")).scalar() == 1
    made = ensure_partitions(engine, now=at(1, 15), ahead=0)
    assert made == ["events_2025_01"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events_default")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM events_2025_01")).scalar() == 1
        method = conn.execute(text("SELECT pg_column_compression(body) FROM events_2025_01")).scalar()
        compression = conn.execute(
            text(
                "SELECT attcompression FROM pg_attribute "
                "WHERE attrelid = 'events_2025_01'::regclass AND attname = 'body'"
            )
        ).scalar()
    assert compression == "l"  # lz4, as the journal's body column (short bodies stay uncompressed: method may be null)
    assert method in (None, "lz4")
    assert ensure_partitions(engine, now=at(1, 15), ahead=0) == []  # made once
    assert receive(engine, [WORLD[1]]) == [Status.APPLIED]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events_2025_01")).scalar() == 2


def test_import_reads_a_gzipped_file(engine, migrated_url, tmp_path: Path) -> None:
    file = tmp_path / "deliveries.jsonl.gz"
    with gzip.open(file, "wt", encoding="utf-8") as out:
        for event, received in WORLD[:2]:
            out.write(
                json.dumps({"headers": event["headers"], "body": event["body"], "received_at": received.isoformat()})
            )
            out.write("\n")
    result = run(migrated_url, "import", str(file))
    assert result.exit_code == 0, result.output
    assert "applied: 2" in result.stderr


def test_the_api_and_the_ui_say_what_was_archived(engine, migrated_url, tmp_path) -> None:
    from litestar.testing import TestClient

    from cmdb_sync.app import create_app
    from tests.conftest import make_settings

    receive(engine, WORLD)
    archived = run(migrated_url, "journal", "archive", "--before", "2025-03", "--to", str(tmp_path / "a.jsonl.gz"))
    assert archived.exit_code == 0, archived.output
    with TestClient(create_app(make_settings(migrated_url, api_tokens=["reader"]))) as client:
        client.headers["Authorization"] = "Bearer reader"
        refused = client.get("/api/v1/envs", params={"as_of": "2025-01-31T00:00:00Z"})
        assert refused.status_code == 410
        assert refused.headers["content-type"].startswith("application/problem+json")
        problem = refused.json()
        assert problem["readable_from"] == "2025-02-02T00:00:00.000Z" and "before 2025-03" in problem["detail"]
        answered = client.get("/api/v1/envs", params={"as_of": "2025-02-15T00:00:00Z"})
        assert answered.status_code == 200
        assert [(env["name"], env["lock_by"]) for env in answered.json()["items"]] == [("a", "x"), ("c", None)]
        page = client.get("/api/v1/apps/shop/envs/a/history").json()
        assert page["archived_before"] == "2025-03-01T00:00:00.000Z"
        assert [version["event_id"] for version in page["items"]] == ["a-3", "a-2"]
        client.post("/ui/login", data={"token": "reader", "next": "/ui"})
        shown = client.get("/ui/history/env/org-1/shop/a")
        assert shown.status_code == 200 and "were archived" in shown.text
        gone = client.get("/ui/envs", params={"as_of": "2025-01-31T00:00:00Z"})
        assert gone.status_code == 410 and "archived on" in gone.text
