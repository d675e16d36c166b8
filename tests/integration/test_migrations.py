"""Migrations build the whole schema on both databases, go down to base and up again, and agree with the models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from cmdb_sync import migrate
from cmdb_sync.db import make_engine
from cmdb_sync.models import Base
from cmdb_sync.partitions import not_a_partition


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrade_downgrade_upgrade(databases, backend: str) -> None:
    url = databases.fresh(backend)
    engine = make_engine(url)
    try:
        migrate.upgrade(url)
        assert migrate.behind_head(engine) is None
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
        migrate.downgrade(url, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        assert migrate.current_revision(engine) is None
        migrate.upgrade(url)
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_schema_check_reads_what_alembic_reads(databases, backend: str) -> None:
    """``behind_head`` reads the revision without Alembic (the server's processes never import it):
    it must say what Alembic says, before the first migration, halfway and at the head."""
    from alembic.script import ScriptDirectory

    assert migrate.head_revision() == ScriptDirectory(migrate.script_location()).get_current_head()
    url = databases.fresh(backend)
    engine = make_engine(url)
    try:
        for revision in (None, "0004", "head"):
            if revision is not None:
                migrate.upgrade(url, revision)
            with engine.connect() as connection:
                alembic_says = MigrationContext.configure(connection).get_current_revision()
            assert migrate.current_revision(engine) == alembic_says
            assert (migrate.behind_head(engine) is None) == (alembic_says == migrate.head_revision())
        assert alembic_says == migrate.head_revision()
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_models_and_migrations_agree(databases, backend: str) -> None:
    url = databases.fresh(backend)
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_name": not_a_partition}
            )
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_journal_by_month_migration_keeps_every_delivery(databases, backend: str) -> None:
    """0008 copies a journal into monthly partitions (PostgreSQL) and records every id in
    event_ids; going down puts the rows back in one table."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    url = databases.fresh(backend)
    migrate.upgrade(url, "0007")
    engine = make_engine(url)
    rows = [{"id": f"e{n}", "received": datetime(2024, month, 3, tzinfo=UTC)} for n, month in enumerate((1, 1, 5), 1)]
    insert = text(
        "INSERT INTO events (id, kind, received_at, status, headers, body) "
        "VALUES (:id, 'Env', :received, 'applied', '{}', '{}')"
    )
    try:
        with engine.begin() as conn:
            for row in rows:
                received = (
                    row["received"] if backend == "postgresql" else row["received"].strftime("%Y-%m-%d %H:%M:%S.%f")
                )
                conn.execute(insert, {**row, "received": received})
        migrate.upgrade(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT id FROM events ORDER BY id")).scalars().all() == ["e1", "e2", "e3"]
            assert conn.execute(text("SELECT id FROM event_ids ORDER BY id")).scalars().all() == ["e1", "e2", "e3"]
            if backend == "postgresql":
                by_partition = conn.execute(
                    text("SELECT tableoid::regclass::text, count(*) FROM events GROUP BY 1 ORDER BY 1")
                ).all()
                assert by_partition == [("events_2024_01", 2), ("events_2024_05", 1)]
        migrate.downgrade(url, "0007")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT id FROM events ORDER BY id")).scalars().all() == ["e1", "e2", "e3"]
            if backend == "postgresql":
                assert not conn.execute(text("SELECT count(*) FROM pg_partitioned_table")).scalar()
    finally:
        engine.dispose()


def _a_change_order_with_a_job(conn, artifacts: str, artifacts_text: str) -> int:  # noqa: ANN001
    """A change order and its one job, written as the projector of 0008-0009 wrote them; the job's id."""
    from sqlalchemy import text

    conn.execute(text("INSERT INTO change_orders (org_id, sn, app_name) VALUES ('o', 'co', 'shop')"))
    order = conn.execute(text("SELECT id FROM change_orders")).scalar_one()
    conn.execute(
        text(
            "INSERT INTO change_order_jobs (change_order_id, position, org_id, app_name, artifacts, artifacts_text) "
            "VALUES (:order, 0, 'o', 'shop', :artifacts, :text)"
        ),
        {"order": order, "artifacts": artifacts, "text": artifacts_text},
    )
    return conn.execute(text("SELECT id FROM change_order_jobs")).scalar_one()  # type: ignore[no-any-return]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_0009_lower_cases_the_artifact_filters_text(databases, backend: str) -> None:
    """Jobs projected before 0009 kept their text's case; 0009 rewrites it from the artifacts."""
    from sqlalchemy import text

    url = databases.fresh(backend)
    migrate.upgrade(url, "0008")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _a_change_order_with_a_job(
                conn, '{"image": "Registry/Shop:1.0", "chart": "Chart-2"}', "Registry/Shop:1.0\nChart-2"
            )
        migrate.upgrade(url)
        with engine.connect() as conn:
            assert (
                conn.execute(text("SELECT artifacts_text FROM change_order_jobs")).scalar_one()
                == "registry/shop:1.0\nchart-2"
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_0010_drops_the_child_rows_keys_and_keeps_the_rows(databases, backend: str) -> None:
    """0010 drops the foreign keys of the child tables (on SQLite by copying each table, the
    deepest first, so that no copy deletes another table's rows by cascade); every row stays. Going
    down deletes the rows whose parent is gone and puts the keys back."""
    from sqlalchemy import text

    url = databases.fresh(backend)
    migrate.upgrade(url, "0009")
    engine = make_engine(url)
    chain = ["change_orders", "change_order_jobs", "change_order_stages", "change_order_tasks"]
    try:
        with engine.begin() as conn:
            job = _a_change_order_with_a_job(conn, "{}", "")
            conn.execute(text("INSERT INTO change_order_stages (job_id, position) VALUES (:job, 0)"), {"job": job})
            stage = conn.execute(text("SELECT id FROM change_order_stages")).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO change_order_tasks (stage_id, position, artifacts, error_messages) "
                    "VALUES (:stage, 0, '{}', '{}')"
                ),
                {"stage": stage},
            )
        assert all(inspect(engine).get_foreign_keys(table) for table in chain[1:])
        migrate.upgrade(url)
        engine.dispose()  # SQLite: a connection opened before the tables were copied reads their keys stale
        assert not any(inspect(engine).get_foreign_keys(table) for table in chain[1:])
        with engine.begin() as conn:
            assert [conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() for table in chain] == [1, 1, 1, 1]
            conn.execute(text("DELETE FROM change_order_jobs"))  # the stage and task are orphans now
        migrate.downgrade(url, "0009")
        engine.dispose()
        assert all(inspect(engine).get_foreign_keys(table) for table in chain[1:])
        with engine.connect() as conn:
            assert [conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() for table in chain] == [1, 0, 0, 0]
    finally:
        engine.dispose()
