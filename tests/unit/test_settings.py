"""Configuration from the environment and .env: token lists, defaults, one-line errors."""

from __future__ import annotations

import pytest

from cmdb_sync.settings import DEFAULT_DATABASE_URL, ConfigError, load_settings


def test_defaults_are_the_embedded_database_and_no_tokens(tmp_cwd) -> None:
    settings = load_settings()
    assert settings.database_url == DEFAULT_DATABASE_URL == "sqlite:///cmdb-sync.db"
    assert settings.is_sqlite
    assert (settings.webhook_tokens, settings.api_tokens, settings.api_admin_tokens) == ([], [], [])
    assert settings.max_body_bytes == 10 * 1024 * 1024
    with pytest.raises(ConfigError, match="CMDB_SYNC_WEBHOOK_TOKENS"):
        settings.check_webhook_auth()


def test_tokens_are_comma_separated(tmp_cwd, monkeypatch) -> None:
    monkeypatch.setenv("CMDB_SYNC_WEBHOOK_TOKENS", " old-token , new-token ,")
    monkeypatch.setenv("CMDB_SYNC_API_ADMIN_TOKENS", "admin")
    settings = load_settings()
    assert settings.webhook_tokens == ["old-token", "new-token"]
    assert settings.api_admin_tokens == ["admin"]
    settings.check_webhook_auth()


def test_tokens_may_be_a_json_list_and_one_that_is_not_whole_is_refused(tmp_cwd, monkeypatch) -> None:
    monkeypatch.setenv("CMDB_SYNC_WEBHOOK_TOKENS", '["old-token", "new,token"]')
    assert load_settings().webhook_tokens == ["old-token", "new,token"]
    for broken in ("[1,2", '["a", 2]', "[]]"):
        monkeypatch.setenv("CMDB_SYNC_API_TOKENS", broken)
        with pytest.raises(ConfigError, match="CMDB_SYNC_API_TOKENS: starts with '\\[' but is not a JSON list"):
            load_settings()


def test_dotenv_file_is_read(tmp_cwd) -> None:
    (tmp_cwd / ".env").write_text(
        "CMDB_SYNC_DATABASE_URL=postgresql+psycopg://u@h/db\nCMDB_SYNC_WEBHOOK_ALLOW_UNAUTHENTICATED=true\n"
    )
    settings = load_settings()
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert not settings.is_sqlite
    settings.check_webhook_auth()  # allowed explicitly


def test_invalid_values_make_one_line_naming_each_variable(tmp_cwd, monkeypatch) -> None:
    monkeypatch.setenv("CMDB_SYNC_MAX_BODY_BYTES", "lots")
    monkeypatch.setenv("CMDB_SYNC_LOG_LEVEL", "chatty")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "\n" not in message
    assert "CMDB_SYNC_MAX_BODY_BYTES" in message and "CMDB_SYNC_LOG_LEVEL" in message


def test_the_command_line_imports_nothing_heavy_before_a_command_runs() -> None:
    """`cmdb-sync --help` answers at once: importing the CLI loads click, not the database, the
    migrations, the web framework, the HTTP client or the terminal UI."""
    import subprocess
    import sys

    probe = "import sys, cmdb_sync.cli; print(' '.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    )
    heavy = {"sqlalchemy", "alembic", "litestar", "httpx", "rich", "pydantic", "granian", "psycopg"}
    assert heavy.isdisjoint(loaded), heavy & loaded
