"""Alembic, driven from code: ``cmdb-sync db``, ``serve`` and the tests all migrate through here.

Asking whether a schema is at the newest migration (``behind_head``: serve, every command,
/readyz) does not import Alembic: it reads the one ``alembic_version`` row and the migrations'
own ``revision`` lines. Alembic and what it imports cost 8 MB in a process that imports it, and
the server's processes live long (issue 9's memory target); only migrating imports it.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def script_location() -> str:
    """The migrations: the repository's ``migrations/`` in a checkout, else the copy an installed
    wheel carries as ``cmdb_sync._migrations``."""
    checkout = PROJECT_ROOT / "migrations"
    if (checkout / "env.py").exists():
        return str(checkout)
    return str(resources.files("cmdb_sync") / "_migrations")


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    ini = PROJECT_ROOT / "alembic.ini"
    config = Config(str(ini)) if ini.exists() else Config()
    config.set_main_option("script_location", script_location())
    # ConfigParser interpolation would read '%' in a password as a reference
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(database_url), revision)


_REVISION = re.compile(r"^(down_revision|revision)\b[^=]*=\s*(?:\"([^\"]*)\"|'([^']*)'|None)", re.MULTILINE)


@cache
def head_revision() -> str | None:
    """The newest migration, read from the migration files' ``revision`` and ``down_revision``
    lines (the history is one line of migrations: the head is the one no other follows)."""
    revisions, followed = set(), set()
    for path in Path(script_location(), "versions").glob("*.py"):
        found = {name: first or second for name, first, second in _REVISION.findall(path.read_text("utf-8"))}
        if found.get("revision"):
            revisions.add(found["revision"])
        if found.get("down_revision"):
            followed.add(found["down_revision"])
    heads = revisions - followed
    if len(heads) != 1:  # not one line: let Alembic say what the head is
        from alembic.script import ScriptDirectory

        return ScriptDirectory(script_location()).get_current_head()
    return heads.pop()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None before the first migration)."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def behind_head(engine: Engine) -> str | None:
    """None when the schema is at the newest migration; else the one line that says where it is
    and what to run. Every "is the schema at head" question (serve, the commands, /readyz) asks here."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return None
    return f"the database schema is at {current or 'no revision'}, the newest is {head}: run `cmdb-sync db upgrade`"
