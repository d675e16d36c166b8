"""The command line: db upgrade/current/downgrade, and serve's refusal on a schema that is behind."""

from __future__ import annotations

from click.testing import CliRunner

from cmdb_sync import migrate
from cmdb_sync.cli import main
from cmdb_sync.db import make_engine


def run(args: list[str], url: str | None = None, *, input: str | None = None, **env: str):
    environment = {"CMDB_SYNC_DATABASE_URL": url} if url else {}
    environment.update(env)
    return CliRunner().invoke(main, args, env=environment, input=input)


def test_db_upgrade_current_downgrade(databases) -> None:
    url = databases.fresh("postgresql")
    assert "behind" in run(["db", "current"], url).output
    result = run(["db", "upgrade"], url)
    assert result.exit_code == 0, result.output
    current = run(["db", "current"], url)
    assert f"current: {migrate.head_revision()}" in current.output and "up to date" in current.output
    assert run(["db", "downgrade", "base", "--yes"], url).exit_code == 0
    engine = make_engine(url)
    try:
        assert migrate.current_revision(engine) is None
    finally:
        engine.dispose()


def test_serve_refuses_a_postgresql_schema_that_is_behind(databases) -> None:
    url = databases.fresh("postgresql")
    result = run(["serve"], url, CMDB_SYNC_WEBHOOK_TOKENS="t")
    assert result.exit_code == 1
    assert "the database schema is at no revision" in result.output
    assert "--migrate" in result.output


def test_serve_refuses_without_webhook_token(databases) -> None:
    result = run(["serve"], databases.fresh("sqlite"))
    assert result.exit_code == 1
    assert "CMDB_SYNC_WEBHOOK_TOKENS" in result.output


def test_invalid_configuration_is_one_line(tmp_cwd) -> None:
    result = run(["db", "current"], None, CMDB_SYNC_DATABASE_URL="mysql://x", CMDB_SYNC_MAX_BODY_BYTES="-3")
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "CMDB_SYNC_DATABASE_URL" in lines[0] and "CMDB_SYNC_MAX_BODY_BYTES" in lines[0]
    assert "Traceback" not in result.output


def test_unreachable_database_is_one_line(tmp_cwd) -> None:
    result = run(["db", "upgrade"], "postgresql+psycopg://postgres@127.0.0.1:1/none")
    assert result.exit_code == 1
    assert result.output.startswith("Error: database:")
    assert "Traceback" not in result.output


def test_db_upgrade_creates_the_default_sqlite_file(tmp_cwd) -> None:
    result = run(["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert (tmp_cwd / "cmdb-sync.db").exists()


def test_db_downgrade_asks_first_and_a_no_changes_nothing(databases) -> None:
    url = databases.fresh("sqlite")
    assert run(["db", "upgrade"], url).exit_code == 0
    refused = run(["db", "downgrade", "base"], url, input="n\n")
    assert refused.exit_code == 1
    assert "Downgrade the database schema to nothing" in refused.output
    engine = make_engine(url)
    try:
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()
    assert run(["db", "downgrade", "base"], url, input="y\n").exit_code == 0


def test_asyncio_database_urls_are_refused_in_one_line_that_says_what_to_write() -> None:
    for url, advice in (
        ("sqlite+aiosqlite:///x.db", "write sqlite:///x.db"),
        ("postgresql+asyncpg://u@h/d", "write postgresql+psycopg://u@h/d"),
    ):
        result = run(["db", "current"], url)
        assert result.exit_code == 1
        assert advice in result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_a_plain_postgresql_url_means_psycopg() -> None:
    from cmdb_sync.settings import load_settings

    settings = load_settings(database_url="postgresql://u@h:5432/d", _env_file=None)
    assert settings.database_url == "postgresql+psycopg://u@h:5432/d"


def test_replay_of_a_kind_cmdb_sync_does_not_project_says_so(databases) -> None:
    url = databases.fresh("sqlite")
    result = run(["replay", "--kind", "Nope"], url)
    assert result.exit_code == 0
    assert "'Nope' is not a kind cmdb-sync projects" in result.output
    assert "AppOrchestration" in result.output


def test_a_revision_that_does_not_exist_is_one_line(databases) -> None:
    url = databases.fresh("sqlite")
    for args in (["db", "upgrade", "nonsense"], ["db", "downgrade", "nonsense", "--yes"]):
        result = run(args, url)
        assert result.exit_code == 1, result.output  # Alembic's CommandError was a traceback
        assert "Can't locate revision identified by 'nonsense'" in result.output
        assert "Traceback" not in result.output


def test_a_time_beyond_what_utc_can_hold_is_a_usage_error(databases) -> None:
    url = databases.fresh("sqlite")
    for args in (["export", "--since", "0001-01-01T00:00:00+14:00"], ["replay", "--since", "9999-12-31T23:59-14:00"]):
        result = run(args, url)
        assert result.exit_code == 2, result.output  # was "database: date value out of range", exit 1
        assert "is out of range: in UTC it falls outside the years 1 to 9999" in result.output
