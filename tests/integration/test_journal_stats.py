"""`cmdb-sync journal stats`: the journal by received month and kind; on PostgreSQL, bodies are
stored with lz4 compression (migration 0006)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from click.testing import CliRunner
from sqlalchemy import text

from cmdb_sync.cli import main
from cmdb_sync.ingest import Delivery, ingest_batch
from tests.helpers import app_event, env_event, raw


def delivery(event: dict, received: datetime) -> Delivery:
    return Delivery(event["headers"], raw(event), received)


def test_journal_stats_by_month_and_kind(engine, migrated_url) -> None:
    big = env_event("Create", 3000, event_id="big", description="a long description " * 400)
    events = [
        delivery(app_event("Create", 1000, event_id="a1"), datetime(2025, 1, 31, 23, 59, tzinfo=UTC)),
        delivery(env_event("Create", 2000, event_id="e1"), datetime(2025, 1, 2, tzinfo=UTC)),
        delivery(big, datetime(2025, 2, 1, tzinfo=UTC)),
    ]
    ingest_batch(engine, events)
    result = CliRunner().invoke(main, ["journal", "stats", "--json"], env={"CMDB_SYNC_DATABASE_URL": migrated_url})
    assert result.exit_code == 0, result.output
    shares = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(s["month"], s["kind"], s["deliveries"]) for s in shares] == [
        ("2025-01", "App", 1),
        ("2025-01", "Env", 1),
        ("2025-02", "Env", 1),
    ]
    assert [s["body_bytes"] for s in shares] == [len(d.raw) for d in events]
    table = CliRunner().invoke(main, ["journal", "stats"], env={"CMDB_SYNC_DATABASE_URL": migrated_url})
    assert "total" in table.stdout and f"{sum(len(d.raw) for d in events):,}" in table.stdout
    if engine.dialect.name == "postgresql":
        assert shares[2]["stored_bytes"] < shares[2]["body_bytes"] / 5  # the long, repetitive body compressed
        with engine.connect() as conn:
            method = conn.scalar(text("SELECT pg_column_compression(body) FROM events WHERE id = 'big'"))
        assert method == "lz4"
    else:
        assert [s["stored_bytes"] for s in shares] == [s["body_bytes"] for s in shares]
