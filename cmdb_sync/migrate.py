"""Alembic, driven from code: ``cmdb-sync db``, ``serve`` and the tests all migrate through here."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def script_location() -> str:
    """The migrations: the repository's ``migrations/`` in a checkout, else the copy an installed
    wheel carries as ``cmdb_sync._migrations``."""
    checkout = PROJECT_ROOT / "migrations"
    if (checkout / "env.py").exists():
        return str(checkout)
    return str(resources.files("cmdb_sync") / "_migrations")


def alembic_config(database_url: str) -> Config:
    ini = PROJECT_ROOT / "alembic.ini"
    config = Config(str(ini)) if ini.exists() else Config()
    config.set_main_option("script_location", script_location())
    # ConfigParser interpolation would read '%' in a password as a reference
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def head_revision() -> str | None:
    return ScriptDirectory(script_location()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def behind_head(engine: Engine) -> str | None:
    """None when the schema is at the newest migration; else the one line that says where it is
    and what to run. Every "is the schema at head" question (serve, the commands, /readyz) asks here."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return None
    return f"the database schema is at {current or 'no revision'}, the newest is {head}: run `cmdb-sync db upgrade`"
